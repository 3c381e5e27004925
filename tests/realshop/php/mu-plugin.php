<?php
/**
 * Plugin Name: woobird test rig
 * Description: What a test host needs that a real host has: webhooks to 127.0.0.1, no internet, TLS by proxy.
 */

// A TLS-terminating proxy tells WordPress the request was https; without it the REST API is plain HTTP
// and WooCommerce wants OAuth 1.0a signatures.
if (($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '') === 'https') {
    $_SERVER['HTTPS'] = 'on';
}

function woobird_rig_is_loopback($url) {
    $host = strtolower((string) wp_parse_url($url, PHP_URL_HOST));
    return in_array($host, ['127.0.0.1', 'localhost', '[::1]', '::1'], true);
}

// Webhooks go through wp_safe_remote_request(), which refuses loopback hosts and most ports.
add_filter('http_request_args', function ($args, $url) {
    if (woobird_rig_is_loopback($url)) {
        $args['reject_unsafe_urls'] = false;
        // woobird is served over TLS with a self-signed certificate (WooCommerce hands keys only to an
        // https callback): trusted on loopback only, as a real host trusts a real certificate.
        $args['sslverify'] = false;
    }
    return $args;
}, 10, 2);
add_filter('http_request_host_is_external', function ($external, $host) {
    return $external || in_array(strtolower($host), ['127.0.0.1', 'localhost'], true);
}, 10, 2);
add_filter('http_allowed_safe_ports', function ($ports, $host, $url) {
    $port = wp_parse_url($url, PHP_URL_PORT);
    return $port ? array_merge($ports, [(int) $port]) : $ports;
}, 10, 3);

// Nothing waits on the internet: WordPress and WooCommerce call home (api.wordpress.org,
// woocommerce.com, paypal.com); every such request fails at once.
add_filter('pre_http_request', function ($preempt, $args, $url) {
    if (woobird_rig_is_loopback($url)) {
        return $preempt;
    }
    return new WP_Error('woobird_rig_offline', 'the test shop does not reach the internet');
}, 10, 3);

// No mail server on a test host: mail is dropped, not attempted.
add_filter('pre_wp_mail', '__return_false');
