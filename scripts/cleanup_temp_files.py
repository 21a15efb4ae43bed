from datetime import UTC, datetime, timedelta

from quest import Input, script


@script(
    friendly_name="Cleanup temp files",
    description="Remove temporary upload files older than 24 hours.",
    quest={"cron": "0 3 * * *"},
    inputs={
        "max_age_hours": Input(
            int, default=24, min=1, description="Remove files last modified this many hours ago."
        ),
    },
)
def cleanup_temp_files(inputs, ctx):
    temp_dir = ctx.settings.root / ".tmp" / "uploads"
    cutoff = ctx.now - timedelta(hours=inputs.max_age_hours)
    cleaned = kept = 0
    try:
        entries = list(temp_dir.iterdir())
    except FileNotFoundError:
        entries = []
    for path in entries:
        try:
            stat = path.lstat()
        except FileNotFoundError:
            continue
        if not path.is_file() or path.is_symlink():
            continue
        if datetime.fromtimestamp(stat.st_mtime, UTC) < cutoff:
            path.unlink(missing_ok=True)
            cleaned += 1
        else:
            kept += 1
    ctx.log.info("Cleaned up %d temporary files", cleaned)
    return {"deleted": cleaned, "kept": kept}
