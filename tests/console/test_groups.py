"""A consumer group's lag on the groups page and on its own page: per
partition committed offset, end and lag, its member, and the chart."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition
from selenium.webdriver.common.by import By

from conftest import BILLING_COMMITTED, BILLING_LAG, ORDERS_END


def cells(row) -> list[str]:
    return [td.text for td in row.find_elements(By.TAG_NAME, "td")]


def test_the_group_page_shows_the_lag_per_partition_and_over_time(page, seeded):
    page.open(f"/console/groups/{seeded.group}")
    page.wait("the partitions", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#offsets tbody tr")) == len(ORDERS_END))
    table = sorted(cells(r) for r in page.driver.find_elements(By.CSS_SELECTOR, "#offsets tbody tr"))
    expected = [
        ["orders", str(p), str(c), str(end), str(end - c)]
        for p, (c, end) in enumerate(zip(BILLING_COMMITTED, ORDERS_END))
    ]
    assert [row[:5] for row in table] == expected
    summary = page.driver.find_element(By.ID, "group-summary").text
    assert "Lag (records)\n25" in summary and BILLING_LAG == 25
    assert "Stable" in summary
    members = page.driver.find_elements(By.CSS_SELECTOR, "#members tbody tr")
    assert len(members) == 1 and "console-tests" in cells(members[0])
    chart = page.wait("the chart", lambda d: d.find_elements(By.CSS_SELECTOR, "#lag-chart svg.line-chart"))[0]
    assert chart.get_attribute("data-last") == str(BILLING_LAG)
    assert page.problems() == []


def test_the_groups_page_lists_the_group_with_its_lag(page, seeded):
    page.open("/console/groups")
    row = page.wait(
        "billing's row",
        lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, "#groups tbody tr") if cells(r)[0] == seeded.group],
    )[0]
    group, kind, state, members, lag = cells(row)[:5]
    assert (group, kind, state, members, lag) == (seeded.group, "classic", "Stable", "1", str(BILLING_LAG))
    row.find_element(By.LINK_TEXT, seeded.group).click()
    page.wait("the group's page", lambda d: d.find_element(By.ID, "group-name").text == seeded.group)
    assert page.problems() == []


def commit(broker, group: str, offsets: list[int]) -> None:
    """Commits `orders`' offsets for `group` from outside the group, as a
    consumer catching up would."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition("orders", p, o) for p, o in enumerate(offsets)], asynchronous=False)
    finally:
        consumer.close()


def test_the_chart_follows_the_lag_down_as_a_consumer_catches_up_without_a_reload(page, seeded):
    group = "reporting"
    commit(seeded.broker, group, [0, 0])
    page.open(f"/console/groups/{group}")

    def charted(d):
        chart = d.find_elements(By.CSS_SELECTOR, "#lag-chart svg.line-chart")
        return chart[0].get_attribute("data-last") if chart else None

    page.wait("all of orders' records as lag", lambda d: charted(d) == str(sum(ORDERS_END)))
    # Set in the page: still there at the end, so nothing reloaded it.
    page.driver.execute_script("window.stillTheSamePage = true;")
    for committed in ([25, 15], list(ORDERS_END)):
        commit(seeded.broker, group, committed)
        lag = sum(ORDERS_END) - sum(committed)
        page.wait(f"lag {lag} charted", lambda d, lag=lag: charted(d) == str(lag))
        page.wait(f"lag {lag} in the table", lambda d, lag=lag: f"Lag (records)\n{lag}" in d.find_element(By.ID, "group-summary").text)
    chart = page.driver.find_element(By.CSS_SELECTOR, "#lag-chart svg.line-chart")
    assert int(chart.get_attribute("data-points")) >= 3
    assert page.driver.execute_script("return window.stillTheSamePage;") is True
    page.screenshot("group-catching-up")
    assert page.problems() == []
