#!/bin/sh
# t1002: faults. A worker SIGKILLed mid-run, the coordinator SIGKILLed and
# restarted on the same state, a worker SIGSTOPped past its lease and then
# resumed (its late result is dropped as stale): every job still ends
# byte-identical to the single-process loop.
. "$(dirname "$0")/farm-lib.sh"
start_coord
start_worker a 20
start_worker b 20
victim=$WPID

id=$(submit)
check "job $id makes progress" wait_tasks "$id" 10 30
kill -9 "$victim"
check "worker SIGKILLed: job $id done" wait_state "$id" done 60
check "worker SIGKILLed: identical" same_as_reference "$id"
start_worker c 20

id=$(submit)
check "job $id makes progress" wait_tasks "$id" 10 30
kill -9 "$CPID"
sleep 0.3
start_coord
check "coordinator restarted: job $id done" wait_state "$id" done 60
check "coordinator restarted: identical" same_as_reference "$id"
check "restart recovery logged" grep -q "recovered" "$T/coord.log"

start_worker d 40
stopped=$WPID
id=$(submit)
check "job $id makes progress" wait_tasks "$id" 8 30
kill -STOP "$stopped"
sleep 2.5 # past the 1.5 s lease
kill -CONT "$stopped"
check "SIGSTOP/SIGCONT: job $id done" wait_state "$id" done 60
check "SIGSTOP/SIGCONT: identical" same_as_reference "$id"
req=$(job_field "$id" requeued)
check "the stopped worker's tasks were requeued ($req)" test "${req:-0}" -gt 0
sleep 0.5
stale=$(job_field "$id" stale_results)
check "its late results were dropped as stale ($stale)" test "${stale:-0}" -gt 0

# SIGTERM: the worker finishes or hands back its task and says bye.
id=$(submit)
check "job $id makes progress" wait_tasks "$id" 5 30
kill -TERM "$stopped"
check "SIGTERM: job $id done" wait_state "$id" done 60
check "SIGTERM: identical" same_as_reference "$id"
check "SIGTERM: the worker said bye" grep -q "handed back" "$T/worker-d.log"
finish
