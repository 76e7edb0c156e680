"""Messages: what a task call is on the wire, and how it is written and read.

- :mod:`~django_tasks_q.messages.envelope`: the :class:`Message` envelope and its checked plain-data form;
- :mod:`~django_tasks_q.messages.codec`: the frame (header, signature, compression) around a serialized body;
- :mod:`~django_tasks_q.messages.signing`: the signing keys and the frame's HMAC-SHA256 signature;
- :mod:`~django_tasks_q.messages.serializers`: the serializer contract and pickle;
  :mod:`~django_tasks_q.messages.json_serializer` and :mod:`~django_tasks_q.messages.json_tags`: the
  default tagged JSON; :mod:`~django_tasks_q.messages.huey_serializers`: huey's ``Serializer`` and
  ``SignedSerializer``.

The public import paths of the serializers are :mod:`django_tasks_q.serializers` and
:mod:`django_tasks_q.signed_serializers`.
"""
