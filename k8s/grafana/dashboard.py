#!/usr/bin/env python3
"""Writes chorus.json, the Chorus Grafana dashboard, from the panel list below.

    python3 k8s/grafana/dashboard.py            # rewrite chorus.json
    python3 k8s/grafana/dashboard.py --check    # exit 1 if chorus.json is stale

Every query uses `${datasource}` and `$__rate_interval`; the end-to-end image check runs each
one against a real Prometheus scraping the stack and fails on a panel that returns no data.
Job names are those of the chart's ServiceMonitors: chorus-hub, chorus-api, chorus-sink,
chorus-transcriber.
"""
import json
import sys
from pathlib import Path

RI = "$__rate_interval"


def q(expr, legend=""):
    return {"expr": expr, "legendFormat": legend}


# (row, [(title, unit, [queries])]): one row per service, then the processes.
ROWS = [
    ("Hub", [
        ("Connections", "short", [
            q('sum(chorus_hub_connections{job="chorus-hub"})', "all pods"),
            q('sum by (instance) (chorus_hub_connections{job="chorus-hub"})', "{{instance}}")]),
        ("Subscriptions", "short", [
            q('sum by (instance) (chorus_hub_subscriptions{job="chorus-hub"})', "{{instance}}")]),
        ("Messages to clients by type", "ops", [
            q(f'sum by (type) (rate(chorus_hub_messages_sent_total{{job="chorus-hub"}}[{RI}]))', "{{type}}")]),
        ("Commands from clients by type", "ops", [
            q(f'sum by (type) (rate(chorus_hub_messages_received_total{{job="chorus-hub"}}[{RI}]))', "{{type}}")]),
        ("Publications by source", "ops", [
            q(f'sum by (source) (rate(chorus_hub_publications_total{{job="chorus-hub"}}[{RI}]))', "{{source}}"),
            q(f'sum(rate(chorus_hub_publications_delivered_total{{job="chorus-hub"}}[{RI}]))', "delivered by the engine (any node)")]),
        ("Delivery latency, publication to socket", "s", [
            q(f'histogram_quantile(0.5, sum by (le) (rate(chorus_hub_delivery_seconds_bucket{{job="chorus-hub"}}[{RI}])))', "p50"),
            q(f'histogram_quantile(0.99, sum by (le) (rate(chorus_hub_delivery_seconds_bucket{{job="chorus-hub"}}[{RI}])))', "p99")]),
        ("Command latency p99 by method", "s", [
            q(f'histogram_quantile(0.99, sum by (method, le) (rate(chorus_hub_command_duration_seconds_bucket{{job="chorus-hub"}}[{RI}])))', "{{method}}")]),
        ("Server API latency p99 by method", "s", [
            q(f'histogram_quantile(0.99, sum by (method, le) (rate(chorus_hub_api_command_duration_seconds_bucket{{job="chorus-hub"}}[{RI}])))', "{{method}}")]),
        ("Engine publish latency p99", "s", [
            q(f'histogram_quantile(0.99, sum by (le) (rate(chorus_hub_broker_publish_seconds_bucket{{job="chorus-hub", result="ok"}}[{RI}])))', "p99"),
            q(f'sum(rate(chorus_hub_broker_publish_seconds_count{{job="chorus-hub", result="error"}}[{RI}]))', "errors/s")]),
        ("Disconnects by code", "ops", [
            q(f'sum by (code) (increase(chorus_hub_disconnects_total{{job="chorus-hub"}}[{RI}]))', "{{code}}")]),
        ("Refused connections", "ops", [
            q(f'sum(rate(chorus_hub_connections_refused_total{{job="chorus-hub"}}[{RI}]))', "refused/s")]),
        ("Bytes queued for clients", "bytes", [
            q('sum by (instance) (chorus_hub_client_queue_bytes{job="chorus-hub"})', "{{instance}}")]),
        ("Redis engine up", "short", [
            q('min by (instance) (chorus_hub_redis_up{job="chorus-hub"}) and on (instance) chorus_hub_build_info{job="chorus-hub", engine="redis"}', "{{instance}}")]),
        ("Build", "short", [
            q('max by (version, engine) (chorus_hub_build_info{job="chorus-hub"})', "{{version}} {{engine}}")]),
        ("Kafka consumer lag by partition", "short", [
            q('sum by (consumer, partition) (chorus_hub_consumer_lag{job="chorus-hub"})', "{{consumer}} p{{partition}}")]),
        ("Kafka records by outcome", "ops", [
            q(f'sum by (consumer, outcome) (rate(chorus_hub_consumer_records_total{{job="chorus-hub"}}[{RI}]))', "{{consumer}} {{outcome}}"),
            q(f'sum by (consumer, kind) (rate(chorus_hub_consumer_failures_total{{job="chorus-hub"}}[{RI}]))', "{{consumer}} failed: {{kind}}")]),
        ("Kafka consumer up, and record delay p99", "short", [
            q('min by (consumer) (chorus_hub_consumer_up{job="chorus-hub"})', "{{consumer}} up"),
            q(f'histogram_quantile(0.99, sum by (consumer, le) (rate(chorus_hub_consumer_delay_seconds_bucket{{job="chorus-hub"}}[{RI}])))', "{{consumer}} delay p99 (s)")]),
    ]),
    ("API", [
        ("Requests by route and status", "reqps", [
            q(f'sum by (route, status) (rate(chorus_api_requests_total{{job="chorus-api"}}[{RI}]))', "{{route}} {{status}}")]),
        ("5xx ratio", "percentunit", [
            # No 5xx at all is 0, not "no data"; the denominator still needs real requests.
            q(f'(sum(rate(chorus_api_requests_total{{job="chorus-api", status=~"5.."}}[{RI}])) or vector(0)) / sum(rate(chorus_api_requests_total{{job="chorus-api"}}[{RI}]))', "5xx")]),
        ("Latency p99 by route", "s", [
            q(f'histogram_quantile(0.99, sum by (route, le) (rate(chorus_api_request_seconds_bucket{{job="chorus-api"}}[{RI}])))', "{{route}}")]),
        ("Messages sent", "ops", [
            q(f'sum(rate(chorus_api_messages_sent_total{{job="chorus-api"}}[{RI}]))', "acknowledged by Kafka"),
            q(f'sum(rate(chorus_api_messages_queued_total{{job="chorus-api"}}[{RI}]))', "left to the outbox relay")]),
        ("Outbox backlog", "short", [
            q('sum by (instance) (chorus_api_outbox_pending{job="chorus-api"})', "pending {{instance}}"),
            q(f'sum(rate(chorus_api_outbox_published_total{{job="chorus-api"}}[{RI}]))', "published/s")]),
        ("Rate limited by limit", "reqps", [
            q(f'sum by (limit) (rate(chorus_api_rate_limited_total{{job="chorus-api"}}[{RI}]))', "{{limit}}")]),
        ("Membership cache hit ratio", "percentunit", [
            q(f'sum(rate(chorus_api_membership_cache_total{{job="chorus-api", result="hit"}}[{RI}])) / sum(rate(chorus_api_membership_cache_total{{job="chorus-api"}}[{RI}]))', "hit ratio")]),
        ("State events by result", "ops", [
            q(f'sum by (result) (rate(chorus_api_state_events_total{{job="chorus-api"}}[{RI}]))', "{{result}}")]),
    ]),
    ("Sink", [
        ("Lag by partition", "short", [
            q('sum by (partition) (chorus_sink_consumer_lag{job="chorus-sink"})', "p{{partition}}")]),
        ("Items written", "ops", [
            q(f'sum by (kind) (rate(chorus_sink_items_written_total{{job="chorus-sink"}}[{RI}]))', "{{kind}}")]),
        ("Batch write latency", "s", [
            q(f'histogram_quantile(0.99, sum by (le) (rate(chorus_sink_batch_write_seconds_bucket{{job="chorus-sink"}}[{RI}])))', "p99")]),
        ("Retries and dead letters by reason", "ops", [
            q(f'sum by (reason) (rate(chorus_sink_retries_total{{job="chorus-sink"}}[{RI}]))', "retry: {{reason}}"),
            q(f'sum by (reason) (increase(chorus_sink_dead_letters_total{{job="chorus-sink"}}[{RI}]))', "dead letter: {{reason}}")]),
        ("DynamoDB and Kafka up, records pending", "short", [
            q('min(chorus_sink_dynamodb_up{job="chorus-sink"})', "DynamoDB up"),
            q('min(chorus_sink_kafka_up{job="chorus-sink"})', "Kafka up"),
            q('sum(chorus_sink_pending_records{job="chorus-sink"})', "records pending")]),
    ]),
    ("Transcriber", [
        ("Jobs by outcome", "ops", [
            q(f'sum by (outcome) (increase(chorus_transcriber_jobs_total{{job="chorus-transcriber"}}[{RI}]))', "{{outcome}}")]),
        ("Inference and job latency", "s", [
            q(f'histogram_quantile(0.5, sum by (le) (rate(chorus_transcriber_inference_seconds_bucket{{job="chorus-transcriber"}}[{RI}])))', "inference p50"),
            q(f'histogram_quantile(0.99, sum by (le) (rate(chorus_transcriber_job_latency_seconds_bucket{{job="chorus-transcriber"}}[{RI}])))', "upload to transcript p99")]),
        ("Real-time factor (clip length / inference time)", "short", [
            q(f'histogram_quantile(0.5, sum by (le) (rate(chorus_transcriber_realtime_factor_bucket{{job="chorus-transcriber"}}[{RI}])))', "median")]),
        ("Retries by step, Kafka up", "short", [
            q(f'sum by (reason) (rate(chorus_transcriber_retries_total{{job="chorus-transcriber"}}[{RI}]))', "retry: {{reason}}"),
            q('min(chorus_transcriber_kafka_up{job="chorus-transcriber"})', "Kafka up")]),
    ]),
    ("Processes", [
        ("Resident memory", "bytes", [
            q('sum by (job, instance) (process_resident_memory_bytes{job=~"chorus-.*"})', "{{job}} {{instance}}")]),
        ("CPU", "percentunit", [
            q(f'sum by (job, instance) (rate(process_cpu_seconds_total{{job=~"chorus-.*"}}[{RI}]))', "{{job}} {{instance}}")]),
        ("Open files / limit", "percentunit", [
            q('max by (job, instance) (process_open_fds{job=~"chorus-.*"} / process_max_fds{job=~"chorus-.*"})', "{{job}} {{instance}}")]),
    ]),
]


def build():
    panels, pid, y = [], 1, 0
    for row, items in ROWS:
        panels.append({"type": "row", "title": row, "id": pid, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid += 1
        y += 1
        for n, (title, unit, queries) in enumerate(items):
            panels.append({
                "type": "timeseries",
                "title": title,
                "id": pid,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 8, "x": (n % 3) * 8, "y": y + (n // 3) * 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {"refId": chr(ord("A") + i), "datasource": {"type": "prometheus", "uid": "${datasource}"},
                     "expr": t["expr"], "legendFormat": t["legendFormat"]}
                    for i, t in enumerate(queries)
                ],
            })
            pid += 1
        y += ((len(items) + 2) // 3) * 8
    return {
        "title": "Chorus",
        "uid": "chorus",
        "tags": ["chorus"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0,
        }]},
        "panels": panels,
    }


def main():
    out = Path(__file__).with_name("chorus.json")
    text = json.dumps(build(), indent=2) + "\n"
    if "--check" in sys.argv:
        if out.read_text() != text:
            print(f"{out} is stale: run python3 {__file__}", file=sys.stderr)
            sys.exit(1)
        return
    out.write_text(text)


if __name__ == "__main__":
    main()
