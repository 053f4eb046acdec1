from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "djshop.shop"
    label = "shop"
