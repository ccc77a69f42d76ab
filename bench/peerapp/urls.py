from django.urls import path

from . import views

urlpatterns = [
    path("page", views.page),
    path("slow", views.slow),
]
