"""A real one-node SLURM cluster on this machine, for tests: munged, slurmctld and slurmd started
from Debian's packages (``slurmctld slurmd slurm-client munge``, SLURM 22.05) as root, every piece
of state (config, spool, state, logs, munge socket) in one temporary folder, on free ports, so it
disturbs nothing else on the machine. The daemons run in the foreground as our children and are
stopped by their pids.

    cluster = SlurmCluster(tmp_path); cluster.start()   # raises ClusterUnavailable with a reason
    cluster.env                                          # {"SLURM_CONF": ...} for clients (sbatch, submitit)
    cluster.stop()

The node declares one GPU-like generic resource (``gpu:1`` on /dev/null) and the feature ``testfeat``
so that a GPU sweep's sbatch script (--gpus-per-node, --constraint) is accepted and runs on CPUs.

Run it by hand: ``python tests/helpers/slurm_cluster.py`` starts a cluster, prints SLURM_CONF, waits
for Enter.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel")
MUNGE_KEY = Path("/etc/munge/munge.key")
PARTITION = "debug"
FEATURE = "testfeat"
CRED_EXPIRE_S = 10  # seconds a requeued job waits before it can start again


class ClusterUnavailable(RuntimeError):
    """The cluster cannot be started here (missing packages, not root, a daemon did not come up)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 2048


def missing_reason() -> str | None:
    """Why no cluster can start here, or None."""
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing:
        return (
            f"SLURM/munge binaries missing ({', '.join(missing)}): "
            f"apt-get install -y slurmctld slurmd slurm-client munge"
        )
    if os.geteuid() != 0:
        return "the one-node SLURM cluster runs its daemons as root; not root here"
    if not MUNGE_KEY.exists():
        return f"no munge key at {MUNGE_KEY} (the munge package creates one; or run mungekey)"
    return None


def _which(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def client_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _write_config(self) -> None:
        r = self.root
        for sub in ("state", "spool", "log", "munge"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o755)  # munged wants its socket's folder searchable by all
        cpus = os.cpu_count() or 1
        mem = max(256, int(_memory_mb() * 0.8))
        socket_path = r / "munge" / "munge.socket"
        self.munge_socket = socket_path
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=testcluster",
                    f"SlurmctldHost={self.host}",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    # cred_expire: a requeued job may start again only once the killed instance's credential
                    # has expired (SLURM's default: 120 s). Starting it earlier by hand (scontrol update
                    # StartTime=now) races slurmd, which then refuses it for good: "Job credential revoked".
                    f"AuthInfo=socket={socket_path},cred_expire={CRED_EXPIRE_S}",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool'}",
                    f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'slurmd.pid'}",
                    f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SchedulerType=sched/backfill",
                    "GresTypes=gpu",
                    "JobRequeue=1",
                    "ReturnToService=2",
                    "MpiDefault=none",
                    "SwitchType=switch/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "InactiveLimit=0",
                    "KillWait=5",
                    "MinJobAge=300",
                    "SlurmctldTimeout=30",
                    "SlurmdTimeout=60",
                    "Waittime=0",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    f"NodeName={self.host} CPUs={cpus} RealMemory={mem} Gres=gpu:1 Feature={FEATURE} "
                    "State=UNKNOWN",
                    f"PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        (self.root / "gres.conf").write_text(f"NodeName={self.host} Name=gpu File=/dev/null\n")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "ab")
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self.client_env(), start_new_session=True
        )
        log.close()

    def _wait(self, what: str, cond, timeout: float = 60.0) -> None:
        t = time.time()
        while not cond():
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise ClusterUnavailable(
                        f"{name} exited with {p.returncode} while waiting for {what}; "
                        f"see {self.root / 'log'}: {self._log_tail(name)}"
                    )
            if time.time() - t > timeout:
                raise ClusterUnavailable(f"timed out waiting for {what}; see {self.root / 'log'}")
            time.sleep(0.2)

    def _log_tail(self, name: str) -> str:
        for f in (self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.stdout"):
            if f.exists() and f.read_text(errors="replace").strip():
                return f.read_text(errors="replace").strip().splitlines()[-1]
        return ""

    def scontrol(self, *args: str, check: bool = True) -> str:
        p = subprocess.run(
            ["scontrol", *args], capture_output=True, text=True, env=self.client_env(), timeout=30
        )
        if check and p.returncode != 0:
            raise RuntimeError(f"scontrol {' '.join(args)}: {p.stderr.strip()}")
        return p.stdout

    def _node_idle(self) -> bool:
        p = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"],
            capture_output=True,
            text=True,
            env=self.client_env(),
            timeout=30,
        )
        return p.returncode == 0 and p.stdout.strip().startswith("idle")

    def start(self) -> "SlurmCluster":
        reason = missing_reason()
        if reason:
            raise ClusterUnavailable(reason)
        self._write_config()
        try:
            self._spawn(
                "munged",
                [
                    _which("munged"),
                    "--foreground",
                    "--force",
                    f"--socket={self.munge_socket}",
                    f"--key-file={MUNGE_KEY}",
                    f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                    f"--log-file={self.root / 'log' / 'munged.log'}",
                    f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                ],
            )
            self._wait("munged's socket", self.munge_socket.exists, timeout=30)
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(self.conf)])
            self._wait(
                "slurmctld",
                lambda: (
                    subprocess.run(
                        ["scontrol", "ping"], capture_output=True, text=True, env=self.client_env()
                    ).stdout.count("UP")
                    > 0
                ),
            )
            self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf)])
            self._wait("the node to be idle", self._node_idle, timeout=90)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancels the cluster's jobs, then stops the daemons we started by their pids: slurmd and
        slurmctld first, munged last."""
        if self.procs.get("slurmctld") is not None and self.procs["slurmctld"].poll() is None:
            try:
                self._cancel_jobs()
            except (OSError, subprocess.SubprocessError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=30)

    def _cancel_jobs(self) -> None:
        """Cancels this cluster's jobs and waits (up to a minute) for their steps to end, so no job
        process outlives the daemons."""
        subprocess.run(
            ["scancel", "--full", "--signal=KILL", "--state=RUNNING"],
            capture_output=True,
            env=self.client_env(),
            timeout=30,
        )
        subprocess.run(["scancel", "--user=root"], capture_output=True, env=self.client_env(), timeout=30)
        t = time.time()
        while self.squeue() and time.time() - t < 60:
            time.sleep(0.5)

    # -- helpers for tests ------------------------------------------------------------------
    def squeue(self) -> list[dict]:
        p = subprocess.run(
            ["squeue", "-h", "-o", "%i|%T|%r"],
            capture_output=True,
            text=True,
            env=self.client_env(),
            timeout=30,
        )
        return [
            dict(zip(("id", "state", "reason"), line.split("|"))) for line in p.stdout.split("\n") if line
        ]

    def diagnosis(self, lines: int = 40) -> str:
        """Every job's state and the daemons' log tails, for a test's failure message."""
        jobs = self.scontrol("show", "job", check=False)
        logs = []
        for name in ("slurmctld", "slurmd"):
            f = self.root / "log" / f"{name}.log"
            if f.exists():
                logs.append(
                    f"--- {name}.log (last {lines} lines)\n"
                    + "\n".join(f.read_text(errors="replace").splitlines()[-lines:])
                )
        return "\n--- scontrol show job\n" + jobs + "\n" + "\n".join(logs)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        c = SlurmCluster(Path(d)).start()
        print(f"export SLURM_CONF={c.conf}")
        try:
            input("cluster up; Enter stops it ")
        finally:
            c.stop()
