"""The topics page: the search finds one topic among the 200 made in bulk,
and the pages of 50 go forward and back."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from conftest import BULK_TOPICS


def names(driver) -> list[str]:
    """The names listed, read at once (the table is redrawn as a whole)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#topics tbody tr td:first-child a')].map((a) => a.textContent);"
    )


def test_the_search_finds_one_topic_among_200(page):
    page.open("/console/topics")
    page.wait("the first page", lambda d: len(names(d)) == 50)
    box = page.driver.find_element(By.ID, "topic-search")
    box.send_keys("load-137")
    page.wait("one match", lambda d: names(d) == ["load-137"])
    assert page.driver.find_element(By.ID, "topic-count").text == "1 topic match"
    assert page.driver.find_element(By.ID, "pager").is_displayed() is False
    # The search is in the address: a reload shows the same.
    assert "q=load-137" in page.driver.current_url
    page.driver.find_element(By.CSS_SELECTOR, "#topics tbody a").click()
    page.wait("the topic's page", lambda d: d.find_element(By.ID, "topic-name").text == "load-137")
    page.wait_rendered()
    assert page.problems() == []


def test_a_search_matching_many_is_paged(page):
    page.open("/console/topics?q=load-")
    page.wait("the first page", lambda d: len(names(d)) == 50)
    info = page.driver.find_element(By.ID, "page-info")
    assert info.text == f"1–50 of {BULK_TOPICS}"
    first = names(page.driver)
    page.driver.find_element(By.ID, "page-next").click()
    page.wait("the second page", lambda d: info.text == f"51–100 of {BULK_TOPICS}")
    second = names(page.driver)
    assert len(second) == 50 and not set(first) & set(second)
    assert second == sorted(second) and first[-1] < second[0]
    page.driver.find_element(By.ID, "page-prev").click()
    page.wait("the first page again", lambda d: names(d) == first)
    assert page.problems() == []


def test_a_search_matching_nothing_says_so(page):
    page.open("/console/topics")
    page.wait("the first page", lambda d: len(names(d)) == 50)
    page.driver.find_element(By.ID, "topic-search").send_keys("nothing-is-called-this")
    page.wait("no match", lambda d: "No topic's name contains" in d.find_element(By.ID, "topics").text)
    assert page.problems() == []
