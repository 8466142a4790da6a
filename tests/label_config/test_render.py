import json
import subprocess
import sys
import xml.etree.ElementTree as ET

from label_config import ATTRIBUTES, labeling_config, load_taxonomy, review_config
from label_config.render import REVIEW_DECISIONS, SUGGESTIONS_NOTE
from webhooks.settings import PROJECT_ROOT


def test_labeling_config_controls_match_the_contract():
    tax = load_taxonomy()
    root = ET.fromstring(labeling_config(tax))
    audio = root.find("Audio")
    assert audio.get("name") == "audio" and audio.get("value") == "$audio"
    hotkeys = []
    for attr in ATTRIBUTES.values():
        node = root.find(f"Choices[@name='{attr.name}']")
        assert node.get("toName") == "audio" and node.get("required") == "true"
        assert node.get("choice") == "single-radio"
        assert [c.get("value") for c in node] == list(attr.values)
        hotkeys += [c.get("hotkey") for c in node]
    assert len(hotkeys) == len(set(hotkeys)) == 12
    for kind in ("emotion", "voice"):
        node = root.find(f"Taxonomy[@name='{kind}']")
        assert node.get("leafsOnly") == "true" and node.get("toName") == "audio"
        groups = {g.get("value"): [c.get("value") for c in g] for g in node}
        assert groups == {f.name: list(f.words) for f in tax.families_of(kind)}
    other = root.find("TextArea[@name='other']")
    assert other is not None and other.get("required") is None


def test_the_interface_says_pre_chosen_values_are_suggestions_to_check():
    headers = [h.get("value") for h in ET.fromstring(labeling_config()).iter("Header")]
    assert SUGGESTIONS_NOTE in headers[:2] and "suggestions" in SUGGESTIONS_NOTE


def test_review_config_shows_the_details_reasons_and_decision():
    root = ET.fromstring(review_config())
    assert {t.get("name") for t in root.iter("Text")} == {"reasons"}
    assert root.find("HyperText[@name='details']").get("value") == "$details"
    decision = root.find("Choices[@name='decision']")
    assert {c.get("alias") for c in decision} == set(REVIEW_DECISIONS) == {"uphold", "overturn"}
    assert [c.get("hotkey") for c in decision] == ["1", "2"]
    assert root.find("TextArea[@name='comment']") is not None


def test_no_hotkey_is_a_key_people_type_in_words():
    """LS fires a Choice's hotkey whenever no text field has the focus: letters would change labels while
    someone types a word after clicking elsewhere."""
    for config in (labeling_config(), review_config()):
        keys = [c.get("hotkey") for c in ET.fromstring(config).iter("Choice") if c.get("hotkey")]
        assert keys
        for key in keys:
            assert key.isdigit() or key.startswith(("shift+", "ctrl+", "alt+")) and key.split("+")[-1].isdigit(), key
        assert len(keys) == len(set(keys))


def _clesc(*args):
    exe = PROJECT_ROOT / ".venv" / "bin" / "clesc"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "scripts.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, check=True).stdout


def test_cli_taxonomy_json_and_render_need_no_server():
    contract = json.loads(_clesc("taxonomy", "--json"))
    assert contract == load_taxonomy().to_contract()
    assert _clesc("config", "render") == labeling_config()
    assert _clesc("config", "render", "--review") == review_config()


def test_cli_validate_reports_bad_annotations(tmp_path):
    export = tmp_path / "export.json"
    good = [{"from_name": a, "to_name": "audio", "type": "choices", "value": {"choices": [ATTRIBUTES[a].values[0]]}}
            for a in ATTRIBUTES]
    bad = good[:2] + [{"from_name": "volume", "to_name": "audio", "type": "choices", "value": {"choices": ["deafening"]}}]
    export.write_text(json.dumps([{"id": 1, "annotations": [
        {"id": 10, "result": good}, {"id": 11, "result": bad}, {"id": 12, "was_cancelled": True, "result": []}]}]))
    exe = PROJECT_ROOT / ".venv" / "bin" / "clesc"
    r = subprocess.run([str(exe), "validate", str(export)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "annotation 11: volume: not a volume value" in r.stdout and "'deafening'" in r.stdout
    assert "1 valid, 1 invalid" in r.stdout
