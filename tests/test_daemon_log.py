"""The daemon's log (DATA_DIR/logs/daemon.log): one JSON object per line, with the engine's
id, and no secret in it, whether in a message, its arguments or a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

from cockpit.daemon import setup_logging

KEY = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdefgh"


async def test_json_lines_with_secrets_redacted(config: Any, engine_factory: Any) -> None:
    engine = await engine_factory(role="daemon")  # its safety redacts every log record
    path = setup_logging(config.data_dir, engine.engine_id)
    log = logging.getLogger("livhana.daemon")
    try:
        log.info("webhook told with key %s", KEY)
        try:
            raise RuntimeError(f"the model refused {KEY}")
        except RuntimeError:
            log.exception("weekly run failed")
    finally:
        for handler in [h for h in logging.getLogger().handlers
                        if getattr(h, "baseFilename", None) == str(path)]:
            logging.getLogger().removeHandler(handler)
            handler.close()
    text = path.read_text(encoding="utf-8")
    assert KEY not in text and "sk-ant-api03" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    told, failed = lines[-2], lines[-1]
    assert told["level"] == "info" and told["engine"] == engine.engine_id
    assert told["msg"].startswith("webhook told with key ") and told["logger"] == "livhana.daemon"
    assert failed["level"] == "error" and "RuntimeError: the model refused" in failed["exc"]
