"""The message browser of a topic page: records found by key and by header
(name and value), JSON shown pretty-printed, binary as hex."""

from __future__ import annotations

import json

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import IMPORTED


def records(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#records .record")


def search(page, **fields: str) -> None:
    """Fills the form's fields (by their name) and submits it."""
    for name, value in fields.items():
        box = page.driver.find_element(By.ID, f"browse-{name.replace('_', '-')}")
        if box.tag_name == "select":
            Select(box).select_by_value(value)
        else:
            box.clear()
            box.send_keys(value)
    page.driver.find_element(By.ID, "browse-submit").click()
    page.wait("the search's answer", lambda d: "found" in d.find_element(By.ID, "browse-summary").text)


def headers_of(record) -> dict[str, str]:
    pairs = record.find_elements(By.CSS_SELECTOR, ".record-headers .header-pair")
    return {p.find_element(By.TAG_NAME, "dt").text: p.find_element(By.TAG_NAME, "dd").text for p in pairs}


def open_topic(page, topic: str) -> None:
    page.open(f"/console/topics/{topic}")
    page.wait("the partitions", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#partitions tbody tr")) > 0)


def test_a_record_is_found_by_key_and_its_json_is_pretty_printed(page, seeded):
    open_topic(page, seeded.topic)
    search(page, key="order-42")
    found = records(page.driver)
    assert len(found) == 1
    assert found[0].find_element(By.CSS_SELECTOR, ".record-key").text == "order-42"
    value = found[0].find_element(By.CSS_SELECTOR, ".record-value pre.json").text
    assert json.loads(value) == {"order": 42, "amount_cents": 4299, "items": ["map"]}
    assert '\n  "order": 42,' in value
    assert headers_of(found[0]) == {"source": "web"}
    assert "key=order-42" in page.driver.current_url
    assert page.problems() == []


def test_records_are_found_by_header_name_and_value(page, seeded):
    open_topic(page, seeded.topic)
    search(page, header="source", header_value="batch-importer")
    found = records(page.driver)
    assert len(found) == IMPORTED
    keys = sorted(r.find_element(By.CSS_SELECTOR, ".record-key").text for r in found)
    assert keys == [f"import-{i}" for i in range(IMPORTED)]
    for record in found:
        assert headers_of(record) == {"source": "batch-importer", "trace-id": "7f3a"}
        assert record.find_element(By.CSS_SELECTOR, ".record-value pre.text").text.startswith("imported row ")
    # A header name alone finds every record that has it.
    search(page, header="trace-id", header_value="")
    assert len(records(page.driver)) == IMPORTED
    assert page.problems() == []


def test_a_binary_value_is_shown_as_hex(page, seeded):
    open_topic(page, seeded.topic)
    search(page, key="blob-1")
    found = records(page.driver)
    assert len(found) == 1
    hex_text = found[0].find_element(By.CSS_SELECTOR, ".record-value pre.hex").text
    assert hex_text.splitlines()[0] == "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
    assert hex_text.split()[-1] == "ff"
    assert headers_of(found[0]) == {"content-type": "application/octet-stream"}
    assert page.problems() == []


def test_the_value_text_filter_and_a_seek_by_offset_in_one_partition(page, seeded):
    open_topic(page, seeded.topic)
    search(page, text='"amount_cents": 1099', seek="offset", offset="0", limit="10")
    found = records(page.driver)
    assert [r.find_element(By.CSS_SELECTOR, ".record-key").text for r in found] == ["order-10"]
    partition = found[0].get_attribute("data-partition")
    search(page, text="", partition=partition, limit="2")
    found = records(page.driver)
    assert [r.get_attribute("data-offset") for r in found] == ["0", "1"]
    assert {r.get_attribute("data-partition") for r in found} == {partition}
    # The next records continue after the last one shown.
    page.driver.find_element(By.CSS_SELECTOR, "#browse-summary button").click()
    page.wait("the next records", lambda d: [r.get_attribute("data-offset") for r in records(d)] == ["2", "3"])
    assert page.problems() == []
