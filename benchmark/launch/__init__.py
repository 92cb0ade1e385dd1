"""The many-run layer: many runs from one command, on this machine or on a SLURM cluster through submitit.

    plan.py      every run of a command, checked before anything is written (UsageError otherwise)
    execute.py   one run under its lock, and the one map from outcomes to exit codes; the ``child`` entry
    sweeps.py    sweep files and the launch of a sweep (sort runs by state, estimate, hand them out)
    local.py     child processes, ``--workers`` at a time
    slurm.py     cluster files and submitit job arrays (preemption, requeue)
    status.py    ``python -m benchmark.status``: what a results folder holds
    estimate.py  run-hours and GPU-hours from measured steps/s

    python -m benchmark.run --sweep slurm/fig2_metaworld.yaml --launcher slurm --cluster slurm/example.yaml
    python -m benchmark.run --algos bc --tasks metaworld --seeds 0,1,2 --launcher local --workers 2

The plan (algorithms x tasks x seeds, per group of a sweep file) is checked as ``benchmark.run``
checks it, then each run is sorted by its directory: done -> skipped; failed -> listed, and run again
only with ``--retry-failed``; held by a live process (its flock, seen in /proc/locks) or by a SLURM job
still in the queue (``slurm_job.json`` + squeue) -> skipped; anything else (new, interrupted, or its
process died) -> launched, and it resumes from its checkpoint.

Every run executes in a child process, ``python -m benchmark.launch child '<json>'``, which plans that
one run again (checking its dataset on the machine that runs it, resolving ``--device auto`` there)
and calls ``benchmark.launch.execute.execute``. The local launcher keeps ``--workers`` children going;
a SLURM job (one job-array element) starts its ``--runs-per-job`` children at once (several small runs
sharing a GPU) and waits for them.

Preemption and time limits (the signal path). submitit submits with ``--signal=USR2@<grace>`` and its
job wrapper installs a SIGUSR2 handler (``checkpoint_and_try_requeue``) and ignores SIGTERM. In a
SLURM job:
  1. SIGUSR2 (SLURM's warning before the time limit; a preemption on clusters that set
     ``preempt_send_user_signal``; ``SlurmJob._interrupt()``) reaches every process of the job step.
  2. Each child runs ``execute`` with SIGUSR2 as its stop signal: the run finishes its current update
     or episode, checkpoints, writes status ``interrupted`` and the child exits 3. Children ignore
     SIGTERM, as submitit's wrapper does (a preemption sends SIGTERM first; SIGUSR2 is the one that
     means "checkpoint now").
  3. In the job's main process submitit's handler calls ``SweepJob.checkpoint()``: it forwards SIGUSR2
     to children that might have missed it, waits (without reaping) until every child has exited,
     then returns a ``DelayedSubmission`` of a fresh ``SweepJob`` with the same runs. submitit pickles
     it, runs ``scontrol requeue`` and exits.
  4. The requeued job starts the same children: done runs are skipped, interrupted ones resume from
     their checkpoint, and rows logged after that checkpoint were never written past it (the
     checkpoint is taken at the stop), so no metrics row is lost or duplicated.
A job killed without SIGUSR2 (scancel, a node failure) leaves its runs to resume from their last
periodic checkpoint (every 10 online episodes, 1,000 offline updates or 10 minutes).

Only ``benchmark.launch.slurm`` imports submitit; nothing here imports JAX or PyTorch.
"""
