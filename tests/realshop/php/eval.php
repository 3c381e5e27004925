<?php
// Runs the PHP code on stdin inside WordPress (for a test's set-up or a look at what the shop stored);
// prints what it returns as JSON on the last line.
require dirname(__DIR__) . '/wp-load.php';
$woobird_rig_code = stream_get_contents(STDIN);
$woobird_rig_result = (static function () use ($woobird_rig_code) {
    return eval($woobird_rig_code);
})();
echo "\n", wp_json_encode($woobird_rig_result), "\n";
