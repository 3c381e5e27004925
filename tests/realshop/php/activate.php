<?php
// Step 2 of 3: activate WooCommerce (it only boots fully in the next process).
require dirname(__DIR__) . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
$result = activate_plugin('woocommerce/woocommerce.php');
if (is_wp_error($result)) {
    fwrite(STDERR, $result->get_error_message() . "\n");
    exit(1);
}
echo json_encode(['active' => is_plugin_active('woocommerce/woocommerce.php')]), "\n";
