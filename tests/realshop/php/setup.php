<?php
// Step 3 of 3: WooCommerce's tables, HPOS, and the shop described by the JSON on stdin
// (options, tax rates, shipping zones, payment methods, products, coupons, a REST key).
// Prints the ids WordPress gave everything, as JSON.
require dirname(__DIR__) . '/wp-load.php';

$shop = json_decode(stream_get_contents(STDIN), true, 32, JSON_THROW_ON_ERROR);

WC_Install::install();
// A new shop turns HPOS on when its admin first opens wp-admin; headless, switch it on here.
$features = wc_get_container()->get(\Automattic\WooCommerce\Internal\Features\FeaturesController::class);
$features->change_feature_enable('custom_order_tables', true);
$synchronizer = wc_get_container()->get(\Automattic\WooCommerce\Internal\DataStores\Orders\DataSynchronizer::class);
if (!$synchronizer->check_orders_table_exists()) {
    $synchronizer->create_database_tables();
}
update_option('woocommerce_custom_orders_table_enabled', 'yes');
update_option('woocommerce_custom_orders_table_data_sync_enabled', 'no');

foreach ($shop['options'] as $name => $value) {
    update_option($name, $value);
}

$rates = [];
foreach ($shop['tax_rates'] as $key => $rate) {
    $rates[$key] = WC_Tax::_insert_tax_rate([
        'tax_rate_country' => $rate['country'],
        'tax_rate_state' => '',
        'tax_rate' => $rate['rate'],
        'tax_rate_name' => $rate['name'],
        'tax_rate_priority' => 1,
        'tax_rate_compound' => 0,
        'tax_rate_shipping' => $rate['shipping'] ? 1 : 0,
        'tax_rate_order' => 0,
        'tax_rate_class' => $rate['class'],
    ]);
}

$methods = [];
foreach ($shop['zones'] as $zone_spec) {
    $zone = $zone_spec['countries'] ? new WC_Shipping_Zone() : new WC_Shipping_Zone(0);
    if ($zone_spec['countries']) {
        $zone->set_zone_name($zone_spec['name']);
        foreach ($zone_spec['countries'] as $country) {
            $zone->add_location($country, 'country');
        }
        $zone->save();
    }
    foreach ($zone_spec['methods'] as $key => $method) {
        $instance = $zone->add_shipping_method($method['id']);
        update_option("woocommerce_{$method['id']}_{$instance}_settings", $method['settings']);
        $methods[$key] = ['method_id' => $method['id'], 'instance_id' => $instance];
    }
}
WC_Cache_Helper::get_transient_version('shipping', true);

foreach ($shop['gateways'] as $id => $settings) {
    update_option("woocommerce_{$id}_settings", $settings);
}

$products = [];
foreach ($shop['products'] as $key => $spec) {
    if (!empty($spec['variations'])) {
        $product = new WC_Product_Variable();
        $attribute = new WC_Product_Attribute();
        $attribute->set_name($spec['attribute']);
        $attribute->set_options(array_keys($spec['variations']));
        $attribute->set_visible(true);
        $attribute->set_variation(true);
        $product->set_attributes([$attribute]);
    } else {
        $product = new WC_Product_Simple();
        $product->set_regular_price($spec['price']);
    }
    $product->set_name($spec['name']);
    $product->set_sku($spec['sku'] ?? '');
    $product->set_tax_class($spec['tax_class'] ?? '');
    $product->set_status('publish');
    $product->save();
    $products[$key] = ['id' => $product->get_id(), 'variations' => []];
    foreach ($spec['variations'] ?? [] as $option => $variation_spec) {
        $variation = new WC_Product_Variation();
        $variation->set_parent_id($product->get_id());
        $variation->set_attributes([sanitize_title($spec['attribute']) => $option]);
        $variation->set_regular_price($variation_spec['price']);
        $variation->set_sku($variation_spec['sku'] ?? '');
        $variation->set_tax_class('parent');
        $variation->set_status('publish');
        $variation->save();
        $products[$key]['variations'][$option] = $variation->get_id();
    }
    if ($product instanceof WC_Product_Variable) {
        WC_Product_Variable::sync($product->get_id());
    }
}

foreach ($shop['coupons'] as $code => $spec) {
    $coupon = new WC_Coupon();
    $coupon->set_code($code);
    $coupon->set_discount_type($spec['type']);
    $coupon->set_amount($spec['amount']);
    $coupon->save();
}

// A REST key as WooCommerce → Settings → Advanced → REST API makes one.
global $wpdb;
$wpdb->insert($wpdb->prefix . 'woocommerce_api_keys', [
    'user_id' => 1,
    'description' => 'woobird',
    'permissions' => 'read_write',
    'consumer_key' => wc_api_hash($shop['key']['consumer_key']),
    'consumer_secret' => $shop['key']['consumer_secret'],
    'truncated_key' => substr($shop['key']['consumer_key'], -7),
]);

echo json_encode([
    'woocommerce' => WC()->version,
    'wordpress' => get_bloginfo('version'),
    'hpos' => \Automattic\WooCommerce\Utilities\OrderUtil::custom_orders_table_usage_is_enabled(),
    'tax_rates' => $rates,
    'shipping' => $methods,
    'products' => $products,
]), "\n";
