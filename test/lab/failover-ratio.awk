# Pairs BenchmarkVIPFailover's and BenchmarkKeepalivedFailover's medians
# (same heartbeat/advert interval, same event) and prints their ratio.
# Input: `go test -bench` output. Used by `make bench-failover`. The idle
# rows list each node's CPU-s per 30 s and RSS (daemon and plugins for
# Vigil; keepalived's processes).
function metric(name,   i) {
	for (i = 3; i < NF; i++) if ($(i + 1) == name) return $i
	return ""
}
# idle(who, key): "n1 0.12 s 13 MB (daemon 9, PSS 6), n2 …" from the
# NODE-cpu-s/30s, NODE-rss-MB, NODE-daemon-rss-MB and NODE-pss-MB metrics
# of the line.
function idle(   i, out, node) {
	out = ""
	for (i = 3; i < NF; i++) if ($(i + 1) ~ /-cpu-s\/30s$/) {
		node = $(i + 1); sub(/-cpu-s\/30s$/, "", node)
		out = out (out == "" ? "" : ", ") node " " $i " s " metric(node "-rss-MB") " MB (daemon " metric(node "-daemon-rss-MB") ", PSS " metric(node "-pss-MB") ")"
	}
	return out
}
/^BenchmarkVIPFailover\/.*\/idle/ { split($1, p, "/"); sub(/^keepalive=/, "", p[2]); vidle[p[2]] = idle(); if (!(p[2] in iseen)) { iseen[p[2]] = 1; iorder[ni++] = p[2] }; next }
/^BenchmarkKeepalivedFailover\/.*\/idle/ { split($1, p, "/"); sub(/^advert=/, "", p[2]); kidle[p[2]] = idle(); if (!(p[2] in iseen)) { iseen[p[2]] = 1; iorder[ni++] = p[2] }; next }
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
	if (ni > 0) {
		printf "\n| interval | idle: Vigil CPU-s per 30 s, RSS of daemon + plugins (daemon alone, PSS of all) | idle: keepalived (its processes) |\n|---|---|---|\n"
		for (i = 0; i < ni; i++) {
			k = iorder[i]
			printf "| %s | %s | %s |\n", k, (k in vidle ? vidle[k] : "–"), (k in kidle ? kidle[k] : "–")
		}
	}
}
