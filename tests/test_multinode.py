"""Multi-node launches: ``--launcher slurm`` (ranks, world size and master address from the SLURM
environment, ``scripts/slurm_train.sh``) and torchrun's rendezvous recipe of docs/distributed.md."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT, tiny_train_options, write_options
from vsrt.utils.dist import expand_nodelist, first_host, slurm_environment


@pytest.mark.parametrize(("nodelist", "hosts"), [
    ("node[01-04],gpu7", ["node01", "node02", "node03", "node04", "gpu7"]),
    ("gpu7", ["gpu7"]),
    ("a[8-10,12]", ["a8", "a9", "a10", "a12"]),
    ("n[098-100]", ["n098", "n099", "n100"]),
    ("rack[1-2]-n[1,3]", ["rack1-n1", "rack1-n3", "rack2-n1", "rack2-n3"]),
    ("x1,y[2],z.example.org", ["x1", "y2", "z.example.org"]),
])
def test_nodelists_expand_like_scontrol(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


@pytest.mark.parametrize("nodelist", ["", "node[a-c]", "node[1-]", "x,,y"])
def test_unreadable_nodelists_are_named(nodelist):
    with pytest.raises(ValueError, match="SLURM node list"):
        expand_nodelist(nodelist)


def test_first_host_asks_scontrol_when_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert first_host("node[07-08]") == "node07"  # no scontrol: the Python parser
    fake = tmp_path / "scontrol"
    fake.write_text("#!/bin/sh\n[ \"$1 $2\" = 'show hostnames' ] && printf 'from-scontrol\\nother\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert first_host("node[07-08]") == "from-scontrol"


def test_slurm_environment_gives_ranks_address_and_port():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODELIST": "gpu[3-4]"}
    got = slurm_environment(environ={**env, "PATH": "/nonexistent"})
    assert got == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu3", "MASTER_PORT": "29500"}
    assert slurm_environment(port=4321, environ=env)["MASTER_PORT"] == "4321"  # dist_params.port
    chosen = slurm_environment(port=4321, environ={**env, "MASTER_PORT": "6000", "MASTER_ADDR": "head"})
    assert (chosen["MASTER_ADDR"], chosen["MASTER_PORT"]) == ("head", "6000")  # the job script's choice wins
    with pytest.raises(RuntimeError, match="needs SLURM_PROCID.*srun"):
        slurm_environment(environ={"SLURM_NTASKS": "1", "SLURM_NODELIST": "a"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_one_task_slurm_job_trains_on_cpu_with_gloo(tmp_path: Path):
    """A faked one-task SLURM step (the variables srun sets) trains two iterations through the
    process group built from them; the group's rank, size and backend are reported at its end."""
    opt = tiny_train_options(tmp_path, **{"train.total_iter": 2, "logger.save_checkpoint_freq": 2})
    del opt["datasets"]["val"], opt["val"]  # the launch is under test, not validation
    opt["dist_params"] = {"backend": "gloo", "port": free_port()}
    opt_path = write_options(tmp_path / "slurm.yml", opt)
    code = ("import torch.distributed as dist, vsrt.train\n"
            "leave = dist.destroy_process_group\n"
            "def report():\n"
            "    print('GROUP', dist.get_rank(), dist.get_world_size(), dist.get_backend(), flush=True)\n"
            "    leave()\n"
            "dist.destroy_process_group = report\n"
            f"vsrt.train.main(['-opt', {str(opt_path)!r}, '--launcher', 'slurm'])\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "MASTER_", "RANK",
                                                                                     "WORLD_SIZE", "LOCAL_RANK"))}
    env.update({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_LOCALID": "0", "SLURM_NODELIST": "localhost",
                "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "GROUP 0 1 gloo" in result.stdout
    assert (tmp_path / "experiments" / "tiny" / "models" / "net_g_2.pth").is_file()



def test_slurm_launcher_outside_srun_is_a_clear_error(tmp_path, monkeypatch):
    from vsrt.train import main

    opt_path = write_options(tmp_path / "slurm.yml", tiny_train_options(tmp_path))
    for key in ("SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_NODELIST", "node[1-2]")
    with pytest.raises(RuntimeError, match="--launcher slurm needs SLURM_PROCID, SLURM_NTASKS: start each task "
                                           "with srun"):
        main(["-opt", str(opt_path), "--launcher", "slurm"])
    assert not (tmp_path / "experiments").exists()  # nothing was started


def test_slurm_train_script_starts_one_task_per_gpu(tmp_path):
    """scripts/slurm_train.sh with a stand-in srun that prints its command line."""
    fake = tmp_path / "srun"
    fake.write_text('#!/bin/sh\necho "srun $*"\n')
    fake.chmod(0o755)
    config = write_options(tmp_path / "c.yml", {"name": "x"})
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "HOME": str(tmp_path)}

    def run(*args: str, **extra: str) -> str:
        result = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "slurm_train.sh"), *args],
                                env={**env, **extra}, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    direct = run("gpu", "vsrt", "16", str(config), "--auto_resume")
    assert "--partition=gpu --job-name=vsrt --ntasks=16 --ntasks-per-node=8 --gpus-per-task=1" in direct
    assert direct.strip().endswith(f"python -u -m vsrt.train -opt {config} --launcher slurm --auto_resume")
    batch = run(str(config), SLURM_JOB_ID="42")  # inside sbatch: srun takes the allocation's tasks
    assert batch.strip() == f"srun --kill-on-bad-exit=1 python -u -m vsrt.train -opt {config} --launcher slurm"
    usage = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "slurm_train.sh")], env=env, capture_output=True,
                           text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_torchrun_rendezvous_recipe_trains(tmp_path):
    """The c10d rendezvous command of docs/distributed.md, on one node with one process (gloo)."""
    opt = tiny_train_options(tmp_path, **{"train.total_iter": 2, "logger.save_checkpoint_freq": 2})
    del opt["datasets"]["val"], opt["val"]  # the launch is under test, not validation
    opt_path = write_options(tmp_path / "rdzv.yml", opt)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MASTER_", "RANK", "WORLD_SIZE",
                                                                                     "LOCAL_RANK"))}
    env.update({"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=1",
               "--rdzv-id=vsrt-test", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}",
               "-m", "vsrt.train", "-opt", str(opt_path), "--launcher", "pytorch"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "experiments" / "tiny" / "models" / "net_g_2.pth").is_file()
