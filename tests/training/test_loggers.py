"""build_loggers: W&B offline unless logged in; a resumed run continues its W&B run and metrics.csv."""

import csv
import logging
import socket

import pytest
from omegaconf import OmegaConf

from dml.config import ConfigError
from dml.training.loggers import build_loggers, previous_wandb_run_id, wandb_unreachable


def _cfg(tmp_path, **wandb):
    return OmegaConf.create(
        {
            "wandb": {
                "_target_": "pytorch_lightning.loggers.WandbLogger",
                "project": "dml",
                "mode": "disabled",
                "save_dir": str(tmp_path),
                **wandb,
            },
            "csv": {
                "_target_": "pytorch_lightning.loggers.CSVLogger",
                "save_dir": str(tmp_path),
                "name": "csv",
                "version": "",
            },
        }
    )


def test_previous_wandb_run_id_is_the_newest_run_folder(tmp_path):
    assert previous_wandb_run_id(tmp_path) is None
    for name in (
        "offline-run-20261122_101500-aaa111",
        "run-20261122_121500-bbb222",
        "offline-run-20261122_111500-ccc333",
    ):
        (tmp_path / "wandb" / name).mkdir(parents=True)
    (tmp_path / "wandb" / "latest-run").symlink_to(
        tmp_path / "wandb" / "offline-run-20261122_101500-aaa111"
    )
    assert previous_wandb_run_id(tmp_path) == "bbb222"


def test_a_fresh_run_gets_a_new_wandb_run_and_resume_continues_the_old_one(tmp_path):
    (tmp_path / "wandb" / "offline-run-20261122_101500-abc123").mkdir(parents=True)
    fresh, _ = build_loggers(_cfg(tmp_path))
    assert fresh._wandb_init.get("id") is None
    resumed, _ = build_loggers(_cfg(tmp_path), resume_step=40)
    assert resumed._wandb_init["id"] == "abc123" and resumed._wandb_init["resume"] == "allow"
    pinned, _ = build_loggers(_cfg(tmp_path, id="mine"), resume_step=40)  # an id the user set wins
    assert pinned._wandb_init["id"] == "mine"


def test_resume_keeps_the_csv_rows_logged_before_the_checkpoint(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    with open(folder / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "step", "train/loss"])
        writer.writeheader()
        writer.writerows(
            {"epoch": s // 5, "step": s, "train/loss": 1.0 / (s + 1)} for s in range(10)
        )
    # the checkpoint was at step 6; steps 6-9 were logged after it and are trained again
    _, logger = build_loggers(_cfg(tmp_path), resume_step=6)
    logger.log_metrics({"train/loss": 0.5, "epoch": 1}, step=6)
    logger.save()
    rows = list(csv.DictReader(open(folder / "metrics.csv", newline="")))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 4, 5, 6]
    assert float(rows[0]["train/loss"]) == 1.0 and float(rows[-1]["train/loss"]) == 0.5
    # without a resume the CSV logger starts the file over, as before
    _, fresh = build_loggers(_cfg(tmp_path))
    fresh.log_metrics({"train/loss": 0.25}, step=0)
    fresh.save()
    assert [r["train/loss"] for r in csv.DictReader(open(folder / "metrics.csv", newline=""))] == [
        "0.25"
    ]


def _unreachable_wandb(monkeypatch) -> str:
    """A W&B key and a server URL where nothing listens (a node without network, in miniature)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: connections are refused
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("WANDB_BASE_URL", url)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return url


def test_a_key_without_network_logs_offline_and_says_how_to_sync(tmp_path, monkeypatch, caplog):
    url = _unreachable_wandb(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="dml"):
        wandb_logger, _ = build_loggers(_cfg(tmp_path, mode=None))
    assert wandb_logger._wandb_init["mode"] == "offline"
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("W&B")]
    assert url in line and "offline" in line
    assert f"wandb sync {tmp_path / 'wandb' / 'offline-run-*'}" in line


def test_wandb_mode_offline_in_the_environment_is_not_probed(tmp_path, monkeypatch, caplog):
    _unreachable_wandb(monkeypatch)
    monkeypatch.setenv("WANDB_MODE", "offline")
    with caplog.at_level(logging.WARNING, logger="dml"):
        wandb_logger, _ = build_loggers(_cfg(tmp_path, mode=None))
    assert wandb_logger._wandb_init["mode"] == "offline" and not caplog.records


def test_forced_online_without_network_is_a_config_error(tmp_path, monkeypatch):
    url = _unreachable_wandb(monkeypatch)
    with pytest.raises(ConfigError, match=f"logger.wandb.mode=online, but the W&B server {url}"):
        build_loggers(_cfg(tmp_path, mode="online"))


@pytest.mark.parametrize(
    ("status", "answers"), [(404, True), (401, True), (502, False), (407, False)]
)
def test_a_proxy_or_gateway_error_is_no_answer(status, answers):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - the http.server API
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        reason = wandb_unreachable(f"http://127.0.0.1:{server.server_port}", timeout=10)
    finally:
        thread.join()
        server.server_close()
    assert (reason is None) == answers, reason


def test_a_server_that_accepts_but_never_answers_is_no_answer():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)  # the kernel completes the connection; nobody reads or replies
        reason = wandb_unreachable(f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=0.5)
    assert reason is not None and "timed out" in reason


def test_a_run_that_crashes_ends_its_wandb_run_as_failed(compose_cfg, fast_run, monkeypatch):
    # Lightning leaves the W&B run open; a crash after training logged (here in checkpoint
    # selection) must still end it, or the next run of the process (a sweep trial) logs into it
    import wandb

    import dml.training.run as run_module

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_cfg(*fast_run, "logger=wandb")

    def crash(run):
        raise RuntimeError("crash after training")

    monkeypatch.setattr(run_module, "select", crash)
    exits = []
    finish = wandb.sdk.wandb_run.Run.finish

    def recording_finish(self, exit_code=None, *args, **kwargs):
        exits.append(exit_code)
        return finish(self, exit_code, *args, **kwargs)

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "finish", recording_finish)
    with pytest.raises(RuntimeError, match="crash after training"):
        run_module.train(cfg)
    assert wandb.run is None  # ended, not left open for the next run
    assert exits == [1]  # marked failed
