"""The hub: :class:`~django_tasks_q.hub.queue.TaskQueue` and the parts it delegates to (see its module).

This package imports nothing itself, so that a part (or a module the parts use, such as ``locks``) can import
``keyspace`` without loading the whole hub.
"""
