"""The city command-centre page (数据直报指挥中心), served by the aggregator at ``/``.

Mount it in the aggregator's app::

    dashboard = Dashboard.create(nats_url=..., auth=TokenAuth(tokens), registry=registry,
                                 alerts_url=settings.alerts_url)
    app.include_router(dashboard.router())
    ...  # in the lifespan's shutdown: await dashboard.close()
"""

from zhibao_aggregator.dashboard.hub import LiveHub, LiveItem, NatsSource, Watch
from zhibao_aggregator.dashboard.router import Dashboard, build_dashboard_router

__all__ = ["Dashboard", "LiveHub", "LiveItem", "NatsSource", "Watch", "build_dashboard_router"]
