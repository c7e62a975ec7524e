"""Every page of the console renders what the broker holds, with no error
in the browser's console, no failed request and no problem on the page;
with VELTRIX_SCREENSHOTS set each is saved as a picture for the docs."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from conftest import BILLING_LAG, BULK_TOPICS, ORDERS_END


def text_of(driver, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def rows(driver, css: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, f"{css} tbody tr"))


# (screenshot name, path, what shows the page has the broker's data)
PAGES = [
    (
        "overview",
        "/",
        # Rates once two answers were compared (polled every 3 s).
        lambda d: "Version" in text_of(d, "#broker")
        and "billing-behind" in text_of(d, "#firing")
        and "records/s" in text_of(d, "#rate-in")
        and "records/s" in text_of(d, "#rate-out"),
    ),
    ("topics", "/console/topics", lambda d: rows(d, "#topics") == 50 and "of" in text_of(d, "#page-info")),
    (
        "topic",
        "/console/topics/shop.events?limit=4",
        lambda d: rows(d, "#partitions") == 3 and len(d.find_elements(By.CSS_SELECTOR, "#records .record")) > 0,
    ),
    ("groups", "/console/groups", lambda d: "billing" in text_of(d, "#groups")),
    (
        "group",
        "/console/groups/billing",
        lambda d: rows(d, "#offsets") == len(ORDERS_END)
        and d.find_elements(By.CSS_SELECTOR, "#lag-chart svg.line-chart")
        and f"{BILLING_LAG}" in text_of(d, "#group-summary"),
    ),
    ("alerts", "/console/alerts", lambda d: "billing-behind" in text_of(d, "#active") and "firing" in text_of(d, "#active")),
    (
        "config",
        "/console/config",
        lambda d: "kafka_listener" in text_of(d, "#config")
        and "V118" in text_of(d, "#check")
        and "1 warning" in text_of(d, "#check-summary"),
    ),
]


@pytest.mark.parametrize(("name", "path", "shows"), PAGES, ids=[p[0] for p in PAGES])
def test_the_page_renders_without_errors(page, name, path, shows):
    page.open(path)
    page.wait_rendered()
    page.wait(f"{path} shows the broker's data", shows)
    page.screenshot(name)
    assert page.problems() == []


def test_the_navigation_marks_the_current_section(page):
    page.open("/console/groups/billing")
    page.wait_rendered()
    current = page.driver.find_elements(By.CSS_SELECTOR, "nav a[aria-current='page']")
    assert [a.text for a in current] == ["Groups"]
    assert page.problems() == []


def test_the_overview_counts_what_the_broker_holds(page, seeded):
    page.open("/")
    page.wait("the counts", lambda d: "Topics" in text_of(d, "#broker"))
    cards = {
        dt.text: dd.text
        for dt, dd in zip(
            page.driver.find_elements(By.CSS_SELECTOR, "#broker .card dt"),
            page.driver.find_elements(By.CSS_SELECTOR, "#broker .card dd:nth-of-type(1)"),
        )
    }
    counts = seeded.broker.api("/api/v1/broker")
    # shop.events, orders and the bulk topics, and those other tests made.
    assert cards["Topics"] == f"{counts['topics']:,}"
    assert counts["topics"] >= BULK_TOPICS + 2
    assert cards["Groups"] == f"{counts['groups']:,}"
    assert "No partition is poisoned" in text_of(page.driver, "#health")
    assert page.problems() == []


def test_a_page_of_an_unknown_topic_says_so(page):
    page.open("/console/topics/no-such-topic")
    banner = page.wait("the banner", lambda d: text_of(d, "#problems"))
    assert "no topic `no-such-topic`" in banner
    # The 404 itself is the one failed request, and what the page is about.
    assert all("no-such-topic" in p for p in page.problems())
