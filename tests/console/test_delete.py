"""Deleting from the console: a topic made with the CLI deleted from its
page (its name typed to confirm) and gone from the list and the API; an
empty group likewise, and a group with a member refused with the reason
before anything is sent; and a broker without `[listeners] http_mutations`
offering no deletion at all, saying why. No console error throughout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By

from harness import Broker, Page
from test_groups import commit

DOOMED = "doomed.events"


def text_of(driver, css: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def shown(driver, element_id: str) -> bool:
    found = driver.find_elements(By.ID, element_id)
    return bool(found) and found[0].is_displayed()


def confirm_and_delete(page: Page, name: str, screenshot: str | None = None) -> None:
    """Types `name` into the confirmation, the button off until it is whole,
    and deletes."""
    d = page.driver
    page.wait("the deletion offered", lambda d: shown(d, "delete-form"))
    button = d.find_element(By.ID, "delete-submit")
    assert not button.is_enabled()
    box = d.find_element(By.ID, "delete-confirm")
    box.send_keys(name[:-1])
    assert not button.is_enabled(), "enabled before the whole name was typed"
    box.send_keys(name[-1])
    page.wait("the button on", lambda d: d.find_element(By.ID, "delete-submit").is_enabled())
    if screenshot:
        page.screenshot_of(screenshot, "#delete-section")
    button.click()


def test_a_topic_deleted_from_its_page_is_gone_from_the_list(page, seeded):
    broker = seeded.broker
    broker.cli("topic", "create", DOOMED, "--partitions", "2")
    broker.cli("produce", DOOMED, stdin="one\ntwo\n")
    page.open(f"/console/topics/{DOOMED}")
    page.wait("the partitions", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")) == 2)
    page.wait("the deletion offered", lambda d: shown(d, "delete-form"))
    assert not shown(page.driver, "delete-off")
    confirm_and_delete(page, DOOMED, screenshot="topic-delete")
    page.wait("the topics page", lambda d: d.current_url == broker.url("/console/topics"))
    page.wait("the notice", lambda d: text_of(d, "#notice") == f"Deleted topic “{DOOMED}”.")
    page.driver.find_element(By.ID, "topic-search").send_keys(DOOMED)
    page.wait("no match", lambda d: "No topic's name contains" in text_of(d, "#topics"))
    assert page.problems() == []
    assert broker.api(f"/api/v1/topics/{DOOMED}") is None
    assert DOOMED not in broker.cli("topic", "list")


def test_an_empty_group_is_deleted_and_one_with_a_member_is_not_offered(page, seeded):
    broker = seeded.broker
    commit(broker, "stale", [1, 1])
    page.open(f"/console/groups/{seeded.group}")
    page.wait("the reason", lambda d: "has members" in text_of(d, "#delete-off"))
    d = page.driver
    d.find_element(By.ID, "delete-confirm").send_keys(seeded.group)
    assert not d.find_element(By.ID, "delete-submit").is_enabled()

    page.open("/console/groups/stale")
    confirm_and_delete(page, "stale")
    page.wait("the groups page", lambda d: d.current_url == broker.url("/console/groups"))
    page.wait("the notice", lambda d: text_of(d, "#notice") == "Deleted group “stale”.")
    page.wait("the list", lambda d: seeded.group in text_of(d, "#groups"))
    assert "stale" not in text_of(page.driver, "#groups")
    assert broker.api("/api/v1/groups/stale") is None
    assert page.problems() == []


@pytest.fixture(scope="module")
def changes_off(tmp_path_factory) -> Iterator[Broker]:
    """A broker started without a file: `http_mutations` is off."""
    broker = Broker(tmp_path_factory.mktemp("changes-off"))
    broker.start()
    broker.cli("topic", "create", "kept", "--partitions", "1")
    yield broker
    problems = broker.stop()
    if problems:
        pytest.fail("\n".join(problems) + f"\n{broker.log_text()[-5000:]}", pytrace=False)


def test_without_http_mutations_no_deletion_is_offered_and_the_page_says_why(driver, changes_off):
    page = Page(driver, changes_off)
    page.open("/console/topics/kept")
    page.wait("the reason", lambda d: "http_mutations = true" in text_of(d, "#delete-off"))
    assert not shown(page.driver, "delete-form")
    assert "veltrix topic delete" in text_of(page.driver, "#delete-off")
    page.wait_rendered()
    assert page.problems() == []
    assert changes_off.api("/api/v1/topics/kept")["deletion"]["allowed"] is False
