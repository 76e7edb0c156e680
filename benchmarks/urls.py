"""The URLconf ``startproject`` writes (the admin only), for :mod:`benchmarks.settings`."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
