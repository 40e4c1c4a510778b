#!/bin/sh
# Runs one demo test: exit 0 passes, 77 skips, anything else fails.
id="$1"
case "$id" in
  *crashes_its_worker_once)
    # Kills its worker (the parent) the first time: herd reports it, respawns the worker and,
    # with --crash-retries 1, runs it again on the fresh worker.
    mark=".herd/demo-crashed"
    if [ ! -e "$mark" ]; then mkdir -p .herd; touch "$mark"; kill -9 "$PPID"; sleep 5; fi ;;
  *needs_gpu)
    echo "no GPU on $HERD_WORKER_ID"; exit 77 ;;
  db::*)
    echo "[$HERD_WORKER_ID] running $id against provider ${id#*[}"; sleep 0.2 ;;
  *)
    sleep 0.1 ;;
esac
exit 0
