"""``huey.contrib.djhuey``: django_tasks_q's drop-in module of the same names."""

from .._names import resolver

TABLE = {
    name: f"django_tasks_q.contrib.djhuey:{name}"
    for name in (
        "HUEY",
        "task",
        "db_task",
        "periodic_task",
        "db_periodic_task",
        "lock_task",
        "enqueue",
        "restore",
        "restore_all",
        "restore_by_id",
        "revoke",
        "revoke_all",
        "revoke_by_id",
        "is_revoked",
        "result",
        "scheduled",
        "on_startup",
        "on_shutdown",
        "pre_execute",
        "post_execute",
        "signal",
        "disconnect_signal",
        "close_db",
    )
}
__all__ = list(TABLE)
__getattr__ = resolver(__name__, TABLE)
