<?php
// Stands in for a system cron that keeps the shop's queue moving: every ~0.25 s it asks the
// database (cheaply, without booting WordPress) whether an action is due, and runs the queue in a
// fresh PHP process when one is — the way a cron request to wp-cron.php would. A file named
// `paused` next to this script holds the queue, as a quiet host without cron does.
[$script, $host, $port, $user, $password, $database] = $argv;
$pause = __DIR__ . '/paused';
$db = new mysqli($host, $user, $password, $database, (int) $port);
$due = "SELECT COUNT(*) FROM wp_actionscheduler_actions WHERE status = 'pending' AND scheduled_date_gmt <= UTC_TIMESTAMP()";
while (true) {
    if (!file_exists($pause)) {
        $count = (int) $db->query($due)->fetch_row()[0];
        if ($count > 0) {
            passthru(escapeshellarg(PHP_BINARY) . ' ' . escapeshellarg(__DIR__ . '/queue.php'));
            continue;
        }
    }
    usleep(250000);
}
