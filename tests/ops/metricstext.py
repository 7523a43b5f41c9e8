"""Reading samples out of a Prometheus text page."""

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with exactly these labels (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return 0.0


def names(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}
