<?php
// One WP-Cron run of Action Scheduler's queue, as wp-cron.php would do it on a page view.
require dirname(__DIR__) . '/wp-load.php';
echo ActionScheduler_QueueRunner::instance()->run('WP Cron'), "\n";
