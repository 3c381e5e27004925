<?php
// Step 1 of 3 (each its own process): WordPress itself. argv: admin password.
define('WP_INSTALLING', true);
require dirname(__DIR__) . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
$result = wp_install('Woobird Testwinkel', 'admin', 'admin@winkel.example', false, '', $argv[1]);
update_option('permalink_structure', '/%postname%/');
update_option('timezone_string', 'Europe/Amsterdam');
echo json_encode(['user_id' => $result['user_id'], 'wordpress' => get_bloginfo('version')]), "\n";
