#!/bin/sh
# Prints the demo suite's test ids, one per line (module::name[param]).
for t in login logout refresh; do echo "api::test_$t"; done
for db in pg mysql; do
  for t in query migrate backup; do echo "db::test_$t[$db]"; done
done
for i in 1 2 3 4 5 6; do echo "ui::test_page_$i"; done
echo "ui::test_crashes_its_worker_once"
echo "ui::test_needs_gpu"
