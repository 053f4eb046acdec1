"""The shop's pages: HTML views rendered from templates (inheritance, includes, loops) and
JSON views, each reading the sqlite database the way a small real shop would."""
from django.core.paginator import Paginator
from django.db.models import Avg, Count, F, Q, Sum
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render

from .models import Category, Customer, Order, Product, Review


def rated(products):
    return products.select_related("category").annotate(rating=Avg("reviews__rating"), n_reviews=Count("reviews"))


def home(request):
    return render(request, "shop/home.html", {
        "categories": Category.objects.annotate(n=Count("products")),
        "featured": rated(Product.objects.all()).order_by("-rating")[:8],
        "reviews": Review.objects.select_related("product", "customer")[:6],
    })


def categories(request):
    return render(request, "shop/category_list.html",
                  {"categories": Category.objects.annotate(n=Count("products"), stock=Sum("products__stock"))})


def category(request, slug):
    cat = get_object_or_404(Category, slug=slug)
    page = Paginator(rated(cat.products.order_by("name")), 12).get_page(request.GET.get("page"))
    return render(request, "shop/category_detail.html", {"category": cat, "page": page})


def product(request, pk):
    item = get_object_or_404(rated(Product.objects.all()), pk=pk)
    return render(request, "shop/product_detail.html", {
        "product": item,
        "reviews": item.reviews.select_related("customer")[:10],
        "related": rated(Product.objects.filter(category=item.category_id).exclude(pk=pk))[:4],
    })


def orders(request):
    rows = Order.objects.select_related("customer").annotate(
        total=Sum(F("items__quantity") * F("items__unit_price")), n_items=Count("items"))[:40]
    return render(request, "shop/order_list.html", {"orders": rows})


def order(request, pk):
    item = get_object_or_404(Order.objects.select_related("customer"), pk=pk)
    return render(request, "shop/order_detail.html",
                  {"order": item, "items": item.items.select_related("product__category")})


def customers(request):
    rows = Customer.objects.annotate(n_orders=Count("orders")).order_by("-n_orders", "name")[:50]
    return render(request, "shop/customer_list.html", {"customers": rows})


def search(request):
    q = request.GET.get("q", "")
    found = rated(Product.objects.filter(Q(name__icontains=q) | Q(description__icontains=q)))[:30] if q else []
    return render(request, "shop/search.html", {"q": q, "products": found})


def product_json(p):
    return {"id": p.pk, "name": p.name, "slug": p.slug, "price": str(p.price), "stock": p.stock,
            "category": p.category.name, "created": p.created.isoformat()}


def api_products(request):
    return JsonResponse({"products": [product_json(p) for p in Product.objects.select_related("category")[:60]]})


def api_product(request, pk):
    p = get_object_or_404(rated(Product.objects.all()), pk=pk)
    data = product_json(p)
    data["rating"] = p.rating and round(p.rating, 2)
    data["reviews"] = [{"rating": r.rating, "body": r.body, "by": r.customer.name}
                       for r in p.reviews.select_related("customer")[:5]]
    return JsonResponse(data)


def api_orders(request):
    rows = Order.objects.select_related("customer").annotate(
        total=Sum(F("items__quantity") * F("items__unit_price")))[:50]
    return JsonResponse({"orders": [{"id": o.pk, "customer": o.customer.name, "status": o.status,
                                     "total": str(o.total), "created": o.created.isoformat()} for o in rows]})


def api_categories(request):
    rows = Category.objects.annotate(n=Count("products"), avg_price=Avg("products__price"))
    return JsonResponse({"categories": [{"slug": c.slug, "name": c.name, "products": c.n,
                                         "avg_price": round(float(c.avg_price or 0), 2)} for c in rows]})


def api_stats(request):
    by_status = dict(Order.objects.values_list("status").annotate(n=Count("id")))
    revenue = Order.objects.filter(status__in=["paid", "shipped"]).aggregate(
        v=Sum(F("items__quantity") * F("items__unit_price")))["v"]
    return JsonResponse({"products": Product.objects.count(), "customers": Customer.objects.count(),
                         "orders": by_status, "revenue": str(revenue),
                         "rating": Review.objects.aggregate(r=Avg("rating"))["r"]})
