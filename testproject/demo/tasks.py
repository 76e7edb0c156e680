"""Example tasks for the demo project.

django-tasks-q discovers a ``tasks`` module in every installed app; the demo's tasks arrive with the consumer.
"""
