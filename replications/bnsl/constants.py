"""The forms the BNSL replication compares, and how each is fitted."""

# name -> (harness form, its options, screen the start grid: see harness.fit.ScalingLaw)
METHODS: dict[str, tuple[str, dict, bool | None]] = {
    "M1": ("m1", {}, None),
    "M2": ("m2", {}, None),
    "M3": ("m3", {}, None),
    "M4": ("m4", {}, None),
    "BNSL": ("bnsl", {"n_breaks": 1}, True),  # 540 starts on a short curve: screened to 64, 4-18x faster
}
