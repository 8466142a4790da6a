"""A development corpus of REAL recorded speech with known pace, pitch and volume, built from Debian packages.

`build(root)` downloads (never installs) a few Debian packages of recorded speech with `apt-get
download` + `dpkg -x`, picks base clips (one speaker each), normalises them to -3 dBFS peak and
changes one property at a time with sox, the transforms whose direction is known:

- pitch -350 / 0 / +450 cents (`sox pitch`): low / medium / high;
- tempo 0.7 / 1.0 / 1.5 (`sox tempo -s`): slow / normal / fast;
- gain -24 / -12 / 0 dB: quiet / medium / loud;
- splices, cut at the quietest point near the middle: 0.7 | 1.5 tempo, -350 | +450 cents, -24 | 0 dB
  (direction alternating between base clips): "variable";
- each variant also degraded the ways real sources are (white noise at 20 dB SNR, a telephone band
  300-3400 Hz at 8 kHz, MP3 at 32 kbit/s, Ogg Vorbis), one degradation per base clip, in turn.

Speakers are split into a `dev` part (rules and scores are tuned on it) and a `heldout` part (never
tuned on: only reported). Voice words get their ground truth from espeak-ng's voice variants
(+whisper, +croak) and from Praat flattening a real clip's intonation (monotonous), in `voice/`; the
espeak-ng voice clips of the dev part use other languages and texts than the reported ones.

NOT used here, on purpose: asterisk-core-sounds-en* and asterisk-prompt-it-menardi*, kept for
independent checks. The corpus is cached under ~/.cache/clesc/corpus-v<N>;
bump CORPUS_VERSION when anything here changes. Needs Debian's sox (with libsox-fmt-all for MP3 and
Ogg) and espeak-ng: `make test-deps` installs them.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

CORPUS_VERSION = 2
RATE = 16_000
PEAK_DBFS = -3.0

PACKAGES: dict[str, str] = {
    "asterisk-core-sounds-es-wav": "CC-BY-SA-3.0 (Allison Smith, Digium)",
    "asterisk-core-sounds-fr-wav": "CC-BY-SA-3.0 (June Wallack, Digium)",
    "asterisk-core-sounds-ru-wav": "CC-BY-SA-3.0 (Digium)",
    "asterisk-core-sounds-it-wav": "CC-BY-SA-3.0 (Digium)",
    "asterisk-prompt-es-co": "GPL-2+ (Colombian Spanish prompts)",
    "asterisk-prompt-fr-armelle": "GPL-2+ (Armelle Desjardins)",
    "codec2-examples": "LGPL-2.1 (David Rowe, codec2)",
}
"""The Debian packages the corpus comes from, with their licences (from each package's copyright file)."""

RESERVED = ("asterisk-core-sounds-en", "asterisk-prompt-it-menardi")
"""Kept for independent checks: never read by this module."""


@dataclass(frozen=True)
class Speaker:
    name: str
    package: str
    folder: str  # under the unpacked package
    split: str  # "dev" or "heldout"
    files: tuple[str, ...] = ()  # codec2: fixed files (and [start, seconds] cuts below); asterisk: picked
    cuts: tuple[tuple[float, float], ...] = ()

    def of(self, source: Path) -> str:
        """The speaker of one base clip: codec2's example files are each a different speaker."""
        return f"codec2-{source.stem}" if self.files else self.name


SPEAKERS: tuple[Speaker, ...] = (
    Speaker("es-mx-allison", "asterisk-core-sounds-es-wav", "usr/share/asterisk/sounds/es_MX_f_Allison", "dev"),
    Speaker("ru-ru-f", "asterisk-core-sounds-ru-wav", "usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU", "dev"),
    Speaker("es-co", "asterisk-prompt-es-co", "usr/share/asterisk/sounds/es", "dev"),
    Speaker("codec2-dev", "codec2-examples", "usr/share/codec2", "dev",
            files=("wav/hts1a.wav", "wav/forig.wav", "wav/hts2a.wav", "wav/ve9qrp.wav", "raw/kristoff.raw"),
            cuts=((0, 3), (0, 1.6), (0, 3), (2, 4), (0, 5))),
    Speaker("fr-ca-june", "asterisk-core-sounds-fr-wav", "usr/share/asterisk/sounds/fr_CA_f_June", "heldout"),
    Speaker("it-it-carlo", "asterisk-core-sounds-it-wav", "usr/share/asterisk/sounds/it_IT_m_Carlo", "heldout"),
    Speaker("fr-armelle", "asterisk-prompt-fr-armelle", "usr/share/asterisk/sounds/fr", "heldout"),
    Speaker("codec2-heldout", "codec2-examples", "usr/share/codec2", "heldout",
            files=("wav/morig.wav", "wav/mmt1.wav", "wav/vk5qi.wav", "wav/big_dog.wav", "raw/g3plx.raw"),
            cuts=((0, 2), (0, 4), (0, 4.5), (0, 2.5), (0, 5.5))),
)
BASES_PER_SPEAKER = 5
MIN_BASE_S, MAX_BASE_S = 2.5, 6.0

# (variant name, sox effects per part, labels). A tuple of two effect lists is a splice.
VARIANTS: dict[str, tuple[tuple[list[str], ...], dict[str, str]]] = {
    "base": (([],), {"pace": "normal", "pitch": "medium", "volume": "loud"}),
    "pitch-350": ((["pitch", "-350"],), {"pace": "normal", "pitch": "low", "volume": "loud"}),
    "pitch+450": ((["pitch", "450"],), {"pace": "normal", "pitch": "high", "volume": "loud"}),
    "tempo0.7": ((["tempo", "-s", "0.7"],), {"pace": "slow", "pitch": "medium", "volume": "loud"}),
    "tempo1.5": ((["tempo", "-s", "1.5"],), {"pace": "fast", "pitch": "medium", "volume": "loud"}),
    "gain-12": ((["gain", "-12"],), {"pace": "normal", "pitch": "medium", "volume": "medium"}),
    "gain-24": ((["gain", "-24"],), {"pace": "normal", "pitch": "medium", "volume": "quiet"}),
    "splice-pace": ((["tempo", "-s", "0.7"], ["tempo", "-s", "1.5"]),
                    {"pace": "variable", "pitch": "medium", "volume": "loud"}),
    "splice-pitch": ((["pitch", "-350"], ["pitch", "450"]),
                     {"pace": "normal", "pitch": "variable", "volume": "loud"}),
    "splice-volume": ((["gain", "-24"], []), {"pace": "normal", "pitch": "medium", "volume": "variable"}),
}
DEGRADATIONS = ("noise20", "telephone", "mp3", "ogg")

VOICE_TEXTS = ("The train to the city leaves at nine in the morning.",
               "Put the boxes down by the door, please.",
               "I think we can sit here for a while and wait.")
# espeak-ng voice -> the voice word it carries (None: no voice word; a plain voice)
VOICE_VARIANTS = {"en-us+whisper": "whispering", "en-us+whisperf": "whispering", "en-us+croak": "croaky",
                  "en-us+m3": None, "en-us+f2": None}
DEV_VOICE_TEXTS = ("The weather will change by the end of the week.",
                   "She said she would call back after lunch.",
                   "Nobody knew where the old road used to go.")
DEV_VOICE_LANGUAGES = ("en-gb", "de", "fr", "es", "pt", "nl", "pl", "sv")
DEV_VOICE_VARIANTS = {"croak": "croaky", "m1": None}
"""Voice-word clips of the dev part (tuned on): other espeak-ng languages and texts than the reported ones."""

COLUMNS = ("file", "split", "speaker", "base", "variant", "degradation", "pace", "pitch", "volume", "voice",
           "source")


def default_root() -> Path:
    """~/.cache/clesc/corpus-v<CORPUS_VERSION> (`--root` picks another folder)."""
    return Path.home() / ".cache" / "clesc" / f"corpus-v{CORPUS_VERSION}"


def load(root: Path | None = None) -> list[dict[str, str]]:
    """The corpus manifest rows (building the corpus first when it is not cached)."""
    root = root or default_root()
    if not (root / "manifest.csv").exists():
        build(root)
    with (root / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["path"] = str(root / row["file"])
    return rows


def build(root: Path) -> Path:
    """Build the corpus into `root` (atomically: a half-built corpus is never left as the cache)."""
    for tool in ("sox", "espeak-ng", "apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found: the corpus needs Debian's sox, libsox-fmt-all and espeak-ng "
                               "(make test-deps)")
    root.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    try:
        unpacked = _unpack_packages(root.parent / "debs", work / "pkg")
        rows = []
        for speaker in SPEAKERS:
            rows += _speaker_rows(speaker, unpacked / speaker.package, work)
        rows += _voice_rows(work, [r for r in rows if r["variant"] == "base" and r["degradation"] == "clean"])
        rows += _espeak_sweep(work)
        shutil.rmtree(work / "pkg")
        with (work / "manifest.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(rows)
        (work / "LICENSES.txt").write_text("".join(f"{p}: {lic}\n" for p, lic in PACKAGES.items()))
        if root.exists():
            shutil.rmtree(root)
        work.rename(root)
    finally:
        if work.exists():
            shutil.rmtree(work)
    return root


def _unpack_packages(debs: Path, out: Path) -> Path:
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        _apt_download(missing, debs)
    out.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        subprocess.run(["dpkg", "-x", str(deb), str(out / package)], check=True)
    return out


def _apt_download(packages: list[str], into: Path) -> None:
    """`apt-get download` (no install); after one `apt-get update` when the package lists are stale."""
    cmd = ["apt-get", "download", "-q", *packages]
    if subprocess.run(cmd, cwd=into, capture_output=True).returncode == 0:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, capture_output=True)
    done = subprocess.run(cmd, cwd=into, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"apt-get download {' '.join(packages)} failed: {done.stderr.strip()[-500:]}")


def _sox(*args: str) -> None:
    subprocess.run(["sox", "-R", "-q", "-V1", *args], check=True)  # -R: the same dither in every build


def _duration(path: Path) -> float:
    return sf.info(str(path)).duration


def _speaker_rows(speaker: Speaker, package: Path, work: Path) -> list[dict[str, str]]:
    base_dir = work / "base"
    base_dir.mkdir(exist_ok=True)
    bases, speakers = [], []
    for i, (src, cut) in enumerate(_base_sources(speaker, package)):
        speakers.append(speaker.of(src))
        target = base_dir / f"{speaker.name}-{i}.wav"
        raw = ["-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1"] if src.suffix == ".raw" else []
        trim = ["trim", str(cut[0]), str(cut[1])] if cut else []
        _sox(*raw, str(src), "-r", str(RATE), "-c", "1", "-b", "16", str(target), *trim, "norm", str(PEAK_DBFS))
        bases.append(target)
    rows = []
    for i, base in enumerate(bases):
        degradation = DEGRADATIONS[(i + SPEAKERS.index(speaker)) % len(DEGRADATIONS)]
        for variant, (parts, labels) in VARIANTS.items():
            if len(parts) == 2 and i % 2:
                parts = parts[::-1]  # splices go both ways: up and down
            clean = work / "clips" / speaker.split / f"{base.stem}-{variant}.wav"
            clean.parent.mkdir(parents=True, exist_ok=True)
            _make_variant(base, parts, clean)
            for deg in ("clean", degradation):
                path = clean if deg == "clean" else _degrade(clean, deg)
                rows.append({"file": str(path.relative_to(work)), "split": speaker.split, "speaker": speakers[i],
                             "base": base.stem, "variant": variant, "degradation": deg, **labels, "voice": "",
                             "source": speaker.package})
    return rows


def _base_sources(speaker: Speaker, package: Path) -> list[tuple[Path, tuple[float, float] | None]]:
    folder = package / speaker.folder
    if speaker.files:
        return [(folder / f, cut) for f, cut in zip(speaker.files, speaker.cuts)]
    candidates = sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".gsm"))
    # a stable pseudo-random order (by name hash), then the first clips of a usable length
    candidates.sort(key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    picked = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in candidates:
            probe = Path(tmp) / "probe.wav"
            _sox(str(p), str(probe))
            if MIN_BASE_S <= _duration(probe) <= MAX_BASE_S:
                picked.append((p, None))
            if len(picked) == BASES_PER_SPEAKER:
                break
    return picked


def _make_variant(base: Path, parts: tuple[list[str], ...], out: Path) -> None:
    if len(parts) == 1:
        _sox(str(base), str(out), *parts[0]) if parts[0] else shutil.copy(base, out)
        return
    x, rate = sf.read(base, dtype="float32")
    cut = _quiet_cut(x, rate)
    with tempfile.TemporaryDirectory() as tmp:
        halves = []
        for k, (segment, effects) in enumerate(zip((x[:cut], x[cut:]), parts)):
            a, b = Path(tmp) / f"{k}.wav", Path(tmp) / f"{k}-fx.wav"
            sf.write(a, segment, rate, subtype="PCM_16")
            _sox(str(a), str(b), *effects) if effects else shutil.copy(a, b)
            halves.append(str(b))
        _sox(*halves, str(out))


def _quiet_cut(x: np.ndarray, rate: int) -> int:
    """The sample at the quietest 50 ms frame between 40% and 60% of the clip (a pause, when there is one)."""
    n = int(0.05 * rate)
    frames = len(x) // n
    energy = (x[:frames * n].reshape(frames, n) ** 2).mean(axis=1)
    lo, hi = int(frames * 0.4), max(int(frames * 0.6), int(frames * 0.4) + 1)
    return (lo + int(np.argmin(energy[lo:hi]))) * n + n // 2


def _degrade(clean: Path, how: str) -> Path:
    stem = clean.with_name(f"{clean.stem}-{how}")
    if how == "noise20":
        x, rate = sf.read(clean, dtype="float64")
        rng = np.random.default_rng(int(hashlib.sha256(clean.name.encode()).hexdigest()[:8], 16))
        speech_power = np.mean(x[np.abs(x) > 0.01 * np.abs(x).max()] ** 2)
        x = x + rng.normal(0, np.sqrt(speech_power / 10 ** (20 / 10)), len(x))
        out = stem.with_suffix(".wav")
        sf.write(out, np.clip(x, -1, 1), rate, subtype="PCM_16")
    elif how == "telephone":
        out = stem.with_suffix(".wav")
        _sox(str(clean), "-r", "8000", str(out), "sinc", "300-3400")
    elif how == "mp3":
        out = stem.with_suffix(".mp3")
        _sox(str(clean), "-C", "32", str(out))
    else:
        out = stem.with_suffix(".ogg")
        _sox(str(clean), "-C", "3", str(out))
    return out


def _voice_rows(work: Path, bases: list[dict[str, str]]) -> list[dict[str, str]]:
    """Voice-word ground truth: espeak-ng +whisper/+croak (and plain voices), and real clips made monotonous."""
    folder = work / "voice"
    folder.mkdir()
    rows = []
    for voice, word in VOICE_VARIANTS.items():
        for k, text in enumerate(VOICE_TEXTS):
            out = folder / f"espeak-{voice.replace('+', '_')}-{k}.wav"
            _espeak(voice, text, out)
            rows.append(_voice_row(out, work, "espeak-" + voice, word or "", "espeak-ng"))
    for language in DEV_VOICE_LANGUAGES:
        for variant, word in DEV_VOICE_VARIANTS.items():
            voice = f"{language}+{variant}"
            for k, text in enumerate(DEV_VOICE_TEXTS):
                out = folder / f"dev-espeak-{language}_{variant}-{k}.wav"
                _espeak(voice, text, out)
                rows.append(_voice_row(out, work, "espeak-" + voice, word or "", "espeak-ng", split="dev"))
    for base in bases:
        flat = folder / f"{Path(base['file']).stem}-monotonous.wav"
        _flatten(work / base["file"], flat)
        for path, word in ((work / base["file"], ""), (flat, "monotonous")):
            rows.append(_voice_row(path, work, base["speaker"], word, base["source"], split=base["split"],
                                   base=base["base"]))
    return rows


def _espeak(voice: str, text: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), text], check=True)
        _sox(str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out), "norm", str(PEAK_DBFS))


ESPEAK_SWEEP = {"pace": ("-s", ("95", "170", "300")), "pitch": ("-p", ("5", "50", "99")),
                "volume": ("peak", ("-27", "-12", "-3"))}
ESPEAK_MIDDLE = {"-s": "170", "-p": "50", "peak": "-12"}
ESPEAK_SWEEP_VOICES = ("en-us+m3", "en-us+f2")


def _espeak_sweep(work: Path) -> list[dict[str, str]]:
    """3 sentences x 2 voices, each attribute swept over 3 settings with the others in the middle: triples."""
    from label_config.schema import ATTRIBUTES

    folder = work / "espeak"
    folder.mkdir()
    rows = []
    for voice in ESPEAK_SWEEP_VOICES:
        for k, text in enumerate(VOICE_TEXTS):
            base = f"espeak-{voice.replace('+', '_')}-{k}"
            for attr, (option, settings) in ESPEAK_SWEEP.items():
                for level, setting in enumerate(settings):
                    values = {**ESPEAK_MIDDLE, option: setting}
                    out = folder / f"{base}-{attr}{level}.wav"
                    with tempfile.TemporaryDirectory() as tmp:
                        raw = Path(tmp) / "raw.wav"
                        subprocess.run(["espeak-ng", "-v", voice, "-s", values["-s"], "-p", values["-p"],
                                        "-w", str(raw), text], check=True)
                        _sox(str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out), "norm", values["peak"])
                    labels = {a: ATTRIBUTES[a].values[1] for a in ESPEAK_SWEEP}
                    labels[attr] = ATTRIBUTES[attr].values[level]
                    variant = {"pace": ("tempo0.7", "base", "tempo1.5"), "pitch": ("pitch-350", "base", "pitch+450"),
                               "volume": ("gain-24", "gain-12", "base")}[attr][level]
                    rows.append({"file": str(out.relative_to(work)), "split": "espeak", "speaker": voice,
                                 "base": f"{base}-{attr}", "variant": variant, "degradation": "clean", **labels,
                                 "voice": "", "source": "espeak-ng"})
    return rows


def _voice_row(path: Path, work: Path, speaker: str, word: str, source: str, split: str = "voice",
               base: str = "") -> dict[str, str]:
    return {"file": str(path.relative_to(work)), "split": split, "speaker": speaker, "base": base or path.stem,
            "variant": "voice", "degradation": "clean", "pace": "", "pitch": "", "volume": "", "voice": word,
            "source": source}


def _flatten(src: Path, out: Path) -> None:
    """The clip with its intonation flattened to its median F0 (Praat PSOLA overlap-add; formants kept)."""
    import parselmouth
    from parselmouth.praat import call

    sound = parselmouth.Sound(str(src))
    manipulation = call(sound, "To Manipulation", 0.01, 60, 600)
    pitch = sound.to_pitch_ac(pitch_floor=60, pitch_ceiling=600)
    f0 = pitch.selected_array["frequency"]
    median = float(np.median(f0[f0 > 0]))
    tier = call(manipulation, "Extract pitch tier")
    call(tier, "Remove points between", sound.xmin, sound.xmax)
    call(tier, "Add point", (sound.xmin + sound.xmax) / 2, median)
    call([tier, manipulation], "Replace pitch tier")
    flat = call(manipulation, "Get resynthesis (overlap-add)")
    flat.save(str(out), "WAV")


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Build the real-speech development corpus (cached).")
    ap.add_argument("--root", type=Path, default=None, help="where (default: ~/.cache/clesc/corpus-v<N>)")
    ap.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = ap.parse_args(argv)
    root = args.root or default_root()
    if args.force or not (root / "manifest.csv").exists():
        build(root)
    rows = load(root)
    print(f"{len(rows)} clips in {root}")


if __name__ == "__main__":
    main()


# --- the checks ----------------------------------------------------------------------------------

ORDINAL_TRIPLES = {"pace": ("tempo0.7", "base", "tempo1.5"), "pitch": ("pitch-350", "base", "pitch+450"),
                   "volume": ("gain-24", "gain-12", "base")}
SPLICES = {"pace": "splice-pace", "pitch": "splice-pitch", "volume": "splice-volume"}


def checks(rows: list[dict[str, str]], predicted: dict[str, dict[str, str]]) -> dict[str, dict[str, int]]:
    """The issue's checks over the base clips of `rows` (one split, one degradation).

    `predicted[file][attribute]` is the label the rules gave (before abstention). Per attribute:
    - ordered: base clips whose three versions (e.g. pitch -350, 0, +450 cents) are labelled in the
      right order: none "variable", never lower for the higher version, and the highest above the lowest;
    - variable: spliced clips labelled "variable";
    - unchanged_variable: unchanged clips (the base itself) labelled "variable";
    and `bases`, the number of base clips, `triples` and `splices`, how many have the three versions
    and the splice (the sweep of espeak-ng has triples of one attribute per base and no splices).
    """
    from label_config.schema import ATTRIBUTES

    by_base: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["variant"] != "voice":
            by_base.setdefault(row["base"], {})[row["variant"]] = row["file"]
    out = {}
    for attr, triple in ORDINAL_TRIPLES.items():
        scale = ATTRIBUTES[attr].values[:3]
        ordered = variable = unchanged = triples = splices = 0
        for variants in by_base.values():
            triples += all(v in variants for v in triple)
            splices += SPLICES[attr] in variants
            labels = [predicted.get(variants.get(v, ""), {}).get(attr) for v in triple]
            if all(label in scale for label in labels):
                ranks = [scale.index(label) for label in labels]
                ordered += ranks[0] <= ranks[1] <= ranks[2] and ranks[0] < ranks[2]
            variable += predicted.get(variants.get(SPLICES[attr], ""), {}).get(attr) == "variable"
            unchanged += predicted.get(variants.get("base", ""), {}).get(attr) == "variable"
        out[attr] = {"ordered": ordered, "variable": variable, "unchanged_variable": unchanged,
                     "bases": len(by_base), "triples": triples, "splices": splices}
    return out
