"""Start and stop the whole local cloud: the emulator layer plus the ``demo-pacs`` stack."""

from __future__ import annotations

import time
from typing import Any

from localcloud import config, emulators, hosting, prereqs, procs, stack, state


def up(with_scheduler: bool = True) -> dict[str, Any]:
    """Start everything detached, wait until ready, write the connection file."""
    existing = state.read()
    if existing and all(procs.group_alive(pid) for pid in existing["pids"].values()):
        return existing
    prereqs.check()
    started = time.monotonic()
    config.STATE_DIR.mkdir(parents=True, exist_ok=True)
    layer = emulators.start(config.STATE_DIR)
    cfg = stack.StackConfig.fixed()
    try:
        children = stack.start(cfg, layer.env, config.STATE_DIR, with_scheduler=with_scheduler)
    except BaseException:
        procs.stop_groups([c.pid for c in layer.children])
        raise
    try:
        children.append(hosting.start(cfg, layer.env, config.STATE_DIR))
    except BaseException:
        procs.stop_groups([c.pid for c in layer.children + children])
        raise
    everything = layer.children + children
    pids = {c.name: c.pid for c in everything}
    env = {
        **layer.env,
        "GOOGLE_CLOUD_PROJECT": cfg.project,
        "PACS_UPLOADS_BUCKET": cfg.buckets["uploads"],
        "PACS_INSTANCES_BUCKET": cfg.buckets["instances"],
        "PACS_DERIVED_BUCKET": cfg.buckets["derived"],
        "PACS_ROUTER_URL": cfg.router_url(),
    }
    for name, url in cfg.function_urls().items():
        env["PACS_URL_" + name.upper().replace("-", "_")] = url
    seconds = time.monotonic() - started
    rss = sum(procs.group_rss_bytes(pid) for pid in pids.values())
    result = {
        "project": cfg.project, "env": env, "pids": pids, "buckets": cfg.buckets,
        "function_urls": cfg.function_urls(), "router_url": cfg.router_url(),
        "web_url": f"http://127.0.0.1:{config.emulator_ports().hosting}",
        "logs": str(config.STATE_DIR / "logs"), "started_seconds": round(seconds, 2),
        "rss_bytes": rss,
    }
    state.write(result)
    return result


def down() -> list[str]:
    """Stop every process the connection file names, by process group."""
    current = state.read()
    if not current:
        return []
    procs.stop_groups(list(current["pids"].values()))
    state.clear()
    return list(current["pids"])


def status() -> dict[str, bool]:
    """Which services answer now (for ``pacs status``)."""
    current = state.read()
    if not current:
        return {}
    env = current["env"]
    result = emulators.answers(env)
    for name, url in current["function_urls"].items():
        result[name] = procs.http_answers(url + "/")
    result["router"] = procs.http_answers(current["router_url"] + "/ready")
    if current.get("web_url"):
        result["hosting"] = procs.http_answers(current["web_url"] + "/__/firebase/init.json")
    return result
