# Pairs BenchmarkVIPFailover's and BenchmarkKeepalivedFailover's medians
# (same heartbeat/advert interval, same event) and prints their ratio.
# Input: `go test -bench` output. Used by `make bench-failover`.
function metric(name,   i) {
	for (i = 3; i < NF; i++) if ($(i + 1) == name) return $i
	return ""
}
/^BenchmarkVIPFailover\// {
	split($1, p, "/"); sub(/^keepalive=/, "", p[2]); sub(/-[0-9]+$/, "", p[4])
	key = p[2] " " p[4]; vigil[key] = metric("median-ms"); vmax[key] = metric("max-ms")
	if (!(key in seen)) { seen[key] = 1; order[n++] = key }
}
/^BenchmarkKeepalivedFailover\// {
	split($1, p, "/"); sub(/^advert=/, "", p[2]); sub(/-[0-9]+$/, "", p[3])
	key = p[2] " " p[3]; ka[key] = metric("median-ms"); kmax[key] = metric("max-ms"); kdual[key] = metric("dual-holder-samples")
	if (!(key in seen)) { seen[key] = 1; order[n++] = key }
}
END {
	printf "\n| interval | event | Vigil median / max ms | keepalived median / max ms | Vigil / keepalived (median) | keepalived dual-holder samples |\n|---|---|---|---|---|---|\n"
	for (i = 0; i < n; i++) {
		k = order[i]; split(k, f, " ")
		r = "–"
		if (k in vigil && k in ka && ka[k] > 0) r = sprintf("%.2f", vigil[k] / ka[k])
		printf "| %s | %s | %s / %s | %s / %s | %s | %s |\n", f[1], f[2], (k in vigil ? vigil[k] : "–"), (k in vmax ? vmax[k] : "–"), (k in ka ? ka[k] : "–"), (k in kmax ? kmax[k] : "–"), r, (k in kdual ? kdual[k] : "–")
	}
}
