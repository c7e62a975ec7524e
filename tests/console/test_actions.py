"""What the console changes, with `[listeners] http_mutations = true`: a
test record produced from a topic's page and found in its message browser;
a group's offsets reset, the dry run's plan first, then executed, and the
lag following; a reset refused, with the reason, while the group has a
member."""

from __future__ import annotations

import re

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import ORDERS_END
from test_groups import cells, commit
from test_messages import headers_of, records, search

SANDBOX = "sandbox"


def text_of(driver, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def test_a_record_produced_from_the_page_is_found_in_the_browser(page, seeded):
    seeded.broker.cli("topic", "create", SANDBOX, "--partitions", "2")
    page.open(f"/console/topics/{SANDBOX}")
    page.wait("the partitions", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")) == 2)
    page.wait("the partition choice", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#produce-partition option")) == 3)
    d = page.driver
    d.find_element(By.ID, "produce-key").send_keys("clue-42")
    d.find_element(By.ID, "produce-value").send_keys('{"clue": 42, "text": "under the old oak"}')
    d.find_element(By.ID, "produce-headers").send_keys("source: console\ntrace-id: 9c1e")
    Select(d.find_element(By.ID, "produce-partition")).select_by_value("1")
    d.find_element(By.ID, "produce-submit").click()
    done = page.wait("the record produced", lambda d: text_of(d, "#produce-done"))
    assert re.search(r"partition 1, offset 0", done), done
    page.screenshot_of("topic-produce", "section[aria-labelledby='produce-heading']")
    # Shown from the answer, then found by key with the browser's form.
    d.find_element(By.CSS_SELECTOR, "#produce-done button").click()
    page.wait("the record shown", lambda d: len(records(d)) == 1)
    search(page, partition="", seek="latest", key="clue-42", limit="50")
    found = page.wait("the record found by key", lambda d: records(d))
    assert len(found) == 1
    assert headers_of(found[0]) == {"source": "console", "trace-id": "9c1e"}
    assert '"clue": 42' in found[0].text
    # Durable and visible to Kafka clients alike.
    topic = seeded.broker.api(f"/api/v1/topics/{SANDBOX}")
    assert [p["end"] for p in topic["partitions"]] == [0, 1]
    assert page.problems() == []


def plan_rows(driver) -> list[list[str]]:
    return [cells(r) for r in driver.find_elements(By.CSS_SELECTOR, "#reset-result tbody tr")]


def plan(page, to: str) -> None:
    page.wait("the reset form", lambda d: d.find_element(By.ID, "reset-section").is_displayed())
    page.wait("orders offered", lambda d: "orders" in text_of(d, "#reset-topic"))
    Select(page.driver.find_element(By.ID, "reset-to")).select_by_value(to)
    page.driver.find_element(By.ID, "reset-plan").click()
    page.wait("the plan", lambda d: len(plan_rows(d)) == len(ORDERS_END))


def test_offsets_are_reset_after_the_dry_run_and_the_lag_changes(page, seeded):
    group = "audit"
    commit(seeded.broker, group, list(ORDERS_END))
    page.open(f"/console/groups/{group}")
    page.wait("no lag yet", lambda d: "Lag (records)\n0" in text_of(d, "#group-summary"))
    plan(page, "earliest")
    rows = sorted(plan_rows(page.driver))
    # Partition, current, new, end, lag now, lag after, lag change.
    assert [r[:7] for r in rows] == [
        [str(p), str(end), "0", str(end), "0", str(end), f"+{end}"] for p, end in enumerate(ORDERS_END)
    ]
    assert "nothing changed yet" in text_of(page.driver, "#reset-result h3")
    # A plan changes nothing.
    assert all(o["committed"] == ORDERS_END[o["partition"]] for o in seeded.broker.api(f"/api/v1/groups/{group}")["offsets"])
    page.screenshot("group-reset")
    page.driver.find_element(By.ID, "reset-execute").click()
    page.wait("the reset committed", lambda d: text_of(d, "#reset-done"))
    total = sum(ORDERS_END)
    page.wait(f"lag {total} on the page", lambda d: f"Lag (records)\n{total}" in text_of(d, "#group-summary"))
    assert sorted(cells(r)[2] for r in page.driver.find_elements(By.CSS_SELECTOR, "#offsets tbody tr")) == ["0", "0"]
    assert page.problems() == []


def test_a_reset_of_a_group_with_a_member_is_refused_with_the_reason(page, seeded):
    page.open(f"/console/groups/{seeded.group}")
    plan(page, "latest")
    page.driver.find_element(By.ID, "reset-execute").click()
    refused = page.wait("the refusal", lambda d: text_of(d, "#reset-error"))
    assert "active member" in refused, refused
    # The refusal (409) is the one failed request.
    problems = page.problems()
    assert problems and all("offsets/reset" in p for p in problems), problems
