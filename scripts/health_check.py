import time
from typing import Any
from urllib.parse import urlsplit

from app import http
from app.alerts import DEFAULT_CHANNEL, send_alert
from quest import Input, script


def _endpoint(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(
            f'each endpoint must be an object {{"name": ..., "url": ...}}, got {value!r}'
        )
    name, url = value.get("name"), value.get("url")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f'endpoint {value!r} needs a non-empty "name"')
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f'endpoint {name!r} needs an http(s) "url", got {url!r}')
    return {"name": name, "url": url}


def _endpoints(values: list[Any]) -> list[dict[str, str]]:
    return [_endpoint(value) for value in values]


@script(
    friendly_name="Health check",
    description="Monitor external API dependencies and alert on failures.",
    quest={"interval": "5 minutes"},
    inputs={
        "endpoints": Input(
            list,
            validator=_endpoints,
            default=[
                {"name": "Payment API", "url": "https://api.stripe.com/v1"},
                {"name": "Email Service", "url": "https://api.sendgrid.com/v3"},
            ],
            min_length=1,
            description='Endpoints to check: a JSON list of {"name": ..., "url": ...}.',
        ),
        "timeout_seconds": Input(
            float, default=5.0, min=0.1, max=60, description="Give up on an endpoint after this."
        ),
        "slow_ms": Input(
            int, default=3000, min=1, description="Warn when an answer takes longer than this."
        ),
    },
)
def health_check(inputs, ctx):
    results, alert_errors = [], []
    for endpoint in ctx.progress.iter(inputs.endpoints, message="endpoints checked"):
        name, url = endpoint["name"], endpoint["url"]
        start = time.perf_counter()
        try:
            http.get(url, timeout=inputs.timeout_seconds)
        except Exception as exc:
            reason = http.describe(exc)
            results.append({"name": name, "ok": False, "error": reason})
            ctx.log.error("[Health] %s: DOWN — %s", name, reason)
            try:
                send_alert(ctx.settings, DEFAULT_CHANNEL, f"🚨 {name} is unreachable: {reason}")
            except Exception as alert_exc:
                alert_errors.append(f"{name}: {alert_exc}")
            continue
        latency = round((time.perf_counter() - start) * 1000)
        slow = latency > inputs.slow_ms
        if slow:
            ctx.log.warning("[Health] %s: slow response (%dms)", name, latency)
        results.append({"name": name, "ok": True, "latency_ms": latency, "slow": slow})

    down = sum(not r["ok"] for r in results)
    if alert_errors:
        raise RuntimeError(f"could not send {len(alert_errors)} alert(s): {alert_errors[0]}")
    return {
        "checked": len(results),
        "down": down,
        "slow": sum(bool(r.get("slow")) for r in results),
        "endpoints": results,
    }
