"""Campaign metrics: rollups captured by database triggers, stats, time series, live stream."""
