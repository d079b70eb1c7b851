import os, time, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector.settings")
django.setup()
from datetime import date
from django.db import connection
from accounting import figures
from connector.models import Tenant
t = Tenant.objects.get(slug="bench")
p = figures.Period(date(2026, 11, 1), date(2026, 11, 30))
for _ in range(3):
    s = time.perf_counter(); r = figures.reconcile(t, p); print("reconcile", round(time.perf_counter() - s, 3), len(r.rows))
with connection.cursor() as c:
    c.execute("EXPLAIN (ANALYZE) " + figures._order_sql(False), figures._params(t, p, None))
    print("\n".join(r[0][:180] for r in c.fetchall()))
