//! Durations (`"500ms"`, `"5s"`, `"5m"`) and sizes (`"64MiB"`) as config strings. TODO(helper).
