"""Hot-path metrics add to plain numbers; a scrape shows what direct Prometheus
children would have shown."""

from broker import metrics
from tests.ops.metricstext import sample


def test_buffered_send_metrics_show_on_the_next_scrape():
    before = metrics.render().decode()
    metrics.record_send("transient", "published", 0.003)
    metrics.record_send("transient", "published", 0.0001)
    metrics.record_send("transient", "refused", 20.0)
    after = metrics.render().decode()

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("jindou_messages_total", kind="transient", outcome="published") == 2
    assert delta("jindou_messages_total", kind="transient", outcome="refused") == 1
    seconds = "jindou_send_seconds_bucket"
    assert delta(seconds, kind="transient", le="0.0005") == 1
    assert delta(seconds, kind="transient", le="0.0025") == 1
    assert delta(seconds, kind="transient", le="0.005") == 2
    assert delta(seconds, kind="transient", le="10.0") == 2
    assert delta(seconds, kind="transient", le="+Inf") == 3
    assert delta("jindou_send_seconds_count", kind="transient") == 3
    assert abs(delta("jindou_send_seconds_sum", kind="transient") - 20.0031) < 1e-9
    # Nothing counted twice by a second scrape.
    assert metrics.render().decode().count("\n") == after.count("\n")
    assert sample(metrics.render().decode(), seconds, kind="transient", le="+Inf") == (
        sample(after, seconds, kind="transient", le="+Inf")
    )


def test_an_observation_on_a_bucket_bound_falls_in_that_bucket():
    before = metrics.render().decode()
    metrics.observe_send("command", 0.001)
    after = metrics.render().decode()
    le = "jindou_send_seconds_bucket"
    assert (
        sample(after, le, kind="command", le="0.001")
        - sample(before, le, kind="command", le="0.001")
        == 1
    )
    assert sample(after, le, kind="command", le="0.0005") == sample(
        before, le, kind="command", le="0.0005"
    )
