"""A real single-node Slurm cluster on this machine, for the tests (not a test module).

Debian's `slurm-wlm` and `munge` are installed with apt-get when `slurmctld` is missing. Everything
the cluster writes lives in one scratch directory: its `slurm.conf` (this host is the controller and
the only node, `CPUs` and `RealMemory` as `slurmd -C` measures them, one generic resource `npu` so
that `--gres=npu:1` requests are real), the munge key and socket, state, spool, logs and pid files.
Clients reach it through `SLURM_CONF` (see `SlurmCluster.env`); `/etc/slurm` is never touched.
The ports are free ones picked at start, so two test sessions on one machine do not collide.
`stop()` ends exactly the daemons this object started, each by its own pid file.
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from apt_packages import SBIN_PATH, AptUnavailable, apt_install, which

PARTITION = "cnclip"
APT_PACKAGES = ("slurm-wlm", "munge")


class SlurmUnavailable(RuntimeError):
    """Slurm cannot be installed here (no apt, no mirror, not root): the reason, verbatim."""


def install_slurm() -> None:
    """`apt-get install slurm-wlm munge` when slurmctld, slurmd, sbatch or munged is missing (as the
    Chromium test installs chromium). Raises SlurmUnavailable with the failing command and its output."""
    try:
        apt_install(APT_PACKAGES, ("slurmctld", "slurmd", "sbatch", "munged"))
    except AptUnavailable as exc:
        raise SlurmUnavailable(str(exc)) from exc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is gone for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class SlurmCluster:
    """slurmctld + slurmd on this host and munged for their authentication, all in `scratch`."""

    def __init__(self, scratch: Path, partition: str = PARTITION, node_pid_namespace: bool = False):
        """node_pid_namespace: slurmd (and so every job and job step) runs in a PID namespace of its own
        with its own /proc, as on a second node: the submitting Snakemake's pid does not exist there."""
        self.scratch = Path(scratch)
        self.node_pid_namespace = node_pid_namespace
        self.slurmd_proc: subprocess.Popen | None = None
        self.partition = partition
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.scratch / "etc" / "slurm.conf"
        self.run_dir = self.scratch / "run"
        self.log_dir = self.scratch / "log"
        # munged runs as the munge user, who cannot enter pytest's private (0700) scratch: its key,
        # socket and pid file get a directory of their own, removed by stop()
        self.munge_dir = Path(tempfile.mkdtemp(prefix="cnclip-munge-"))
        self.pid_files = {  # start order; stopped in reverse
            "munged": self.munge_dir / "munged.pid",
            "slurmctld": self.run_dir / "slurmctld.pid",
            "slurmd": self.run_dir / "slurmd.pid",
        }
        self.started: dict[str, int] = {}

    @property
    def env(self) -> dict[str, str]:
        """What a client (sbatch, squeue, the Snakemake slurm plugin) needs to reach this cluster."""
        return {"SLURM_CONF": str(self.conf), "PATH": SBIN_PATH}

    def _run(self, *cmd: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
        done = subprocess.run(list(cmd), env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
                               f"\n{self.logs()}")
        return done

    def logs(self, lines: int = 15) -> str:
        out = []
        for log in sorted(self.log_dir.glob("*.log")) + sorted(self.munge_dir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(out)

    def _node_hardware(self) -> tuple[int, int]:
        """(CPUs, RealMemory MB) of this machine as slurmd measures it (`slurmd -C`)."""
        line = self._run(which("slurmd"), "-C").stdout.splitlines()[0]
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        return int(fields["CPUs"]), int(fields["RealMemory"])

    def write_config(self) -> None:
        for d in (self.conf.parent, self.run_dir, self.log_dir, self.scratch / "state", self.scratch / "spool"):
            d.mkdir(parents=True, exist_ok=True)
        cpus, real_memory = self._node_hardware()
        self.cpus, self.real_memory = min(cpus, 2), real_memory
        self.ctld_port, self.slurmd_port = free_port(), free_port()
        self.conf.write_text(f"""\
# single-node test cluster written by tests/slurm_cluster.py
ClusterName=cnclip-test
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_dir / "munge.socket.2"}
StateSaveLocation={self.scratch / "state"}
SlurmdSpoolDir={self.scratch / "spool"}
SlurmctldPidFile={self.pid_files["slurmctld"]}
SlurmdPidFile={self.pid_files["slurmd"]}
SlurmctldLogFile={self.log_dir / "slurmctld.log"}
SlurmdLogFile={self.log_dir / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
SchedulerParameters=sched_interval=2
# keep finished jobs for `scontrol show job` until the test has read them (the default purges after 300 s)
MinJobAge=86400
GresTypes=npu
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.real_memory} Gres=npu:1 State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        # a count-only generic resource: the NPU stands for the one Ascend device a job may hold
        (self.conf.parent / "gres.conf").write_text(f"NodeName={self.node} Name=npu Count=1\n")

    def _start_munged(self) -> None:
        munge = pwd.getpwnam("munge")
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chown(key, munge.pw_uid, munge.pw_gid)
        os.chmod(key, 0o400)
        # owned by munge, and open to the clients that connect to its socket
        os.chown(self.munge_dir, munge.pw_uid, munge.pw_gid)
        os.chmod(self.munge_dir, 0o755)
        cmd = [which("munged"), f"--key-file={key}", f"--socket={self.munge_dir / 'munge.socket.2'}",
               f"--pid-file={self.pid_files['munged']}", f"--log-file={self.munge_dir / 'munged.log'}",
               f"--seed-file={self.munge_dir / 'munged.seed'}"]
        self._run(which("runuser"), "-u", "munge", "--", *cmd)

    def _wait_pid_file(self, name: str, timeout: float = 30) -> None:
        pid_file = self.pid_files[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pid_file.is_file() and pid_file.read_text().strip().isdigit():
                pid = int(pid_file.read_text().strip())
                if _alive(pid):
                    self.started[name] = pid
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not start (no live pid in {pid_file})\n{self.logs()}")

    def start(self, timeout: float = 90) -> "SlurmCluster":
        try:
            self.write_config()
            self._start_munged()
            self._wait_pid_file("munged")
            self._run(which("slurmctld"), "-f", str(self.conf))
            self._wait_pid_file("slurmctld")
            if self.node_pid_namespace:
                self._start_slurmd_in_pid_namespace()
            else:
                self._run(which("slurmd"), "-f", str(self.conf))
                self._wait_pid_file("slurmd")
            self.wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_slurmd_in_pid_namespace(self) -> None:
        """slurmd in the foreground as PID 1 of a new PID namespace (unshare --mount-proc: /proc shows
        that namespace only). Its pid file holds its pid as seen inside, so it is never read: the
        unshare process (this namespace's pid) stands for it, and --kill-child ends slurmd with it."""
        self.pid_files.pop("slurmd")
        log = open(self.log_dir / "slurmd-unshare.log", "w")
        self.slurmd_proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM", which("slurmd"), "-D", "-f",
             str(self.conf)], env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.started["slurmd"] = self.slurmd_proc.pid

    def node_pid_namespace_id(self) -> str | None:
        """The PID namespace slurmd runs in (that of its unshare child), or None."""
        if self.slurmd_proc is None:
            return None
        children = Path(f"/proc/{self.slurmd_proc.pid}/task/{self.slurmd_proc.pid}/children").read_text().split()
        return os.readlink(f"/proc/{children[0]}/ns/pid") if children else None

    def wait_idle(self, timeout: float) -> None:
        deadline, state = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            done = self._run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False)
            state = done.stdout.strip() or done.stderr.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        reason = self._run("sinfo", "-R", check=False).stdout
        raise RuntimeError(f"node {self.node} not idle after {timeout:.0f} s (state: {state}; {reason})\n{self.logs()}")

    def cancel_jobs(self, timeout: float = 30) -> None:
        if not self.started.get("slurmctld") or not _alive(self.started["slurmctld"]):
            return
        jobs = self._run("squeue", "-h", "-o", "%i", check=False).stdout.split()
        if not jobs:
            return
        self._run("scancel", *jobs, check=False)
        deadline = time.monotonic() + timeout
        while self._run("squeue", "-h", "-o", "%i", check=False).stdout.split() and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to each daemon started here, found by its pid file in the scratch directory
        (and only those), SIGKILL if it lingers. Jobs still queued or running (a run that failed
        half-way) are cancelled through this cluster's own scancel first."""
        self.cancel_jobs()
        if self.slurmd_proc is not None:
            self.started.pop("slurmd", None)
            self.slurmd_proc.terminate()
            try:
                self.slurmd_proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.slurmd_proc.kill()
                self.slurmd_proc.wait()
        for name in reversed(list(self.pid_files)):
            pid = self.started.pop(name, None)
            pid_file = self.pid_files[name]
            if pid is None and pid_file.is_file() and pid_file.read_text().strip().isdigit():
                pid = int(pid_file.read_text().strip())  # started, but not yet seen alive
            if pid is None or not _alive(pid):
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.munge_dir, ignore_errors=True)
