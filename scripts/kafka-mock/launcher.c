/*
 * kafka-mock: runs librdkafka's mock Kafka cluster until stdin closes.
 *
 * Usage: kafka-mock <brokers> [topic:partitions ...]
 * Prints one line "BOOTSTRAP host:port,host:port,..." once the cluster listens, then reads one
 * command per line on stdin and answers each with "OK <command>" or "ERR <reason>: <command>":
 *
 *   down <broker>                       broker stops answering (connections closed)
 *   up <broker>                         broker is back
 *   rtt <broker> <ms>                   broker answers every request <ms> later
 *   err <apikey> <errcode> <count>      the next <count> requests of that API fail with <errcode>
 *   berr <broker> <apikey> <errcode> <ms> <count>
 *                                       the broker's next <count> requests of that API fail
 *                                       with <errcode> (0: handled as usual) and are answered
 *                                       <ms> later (a request is handled at once, its answer
 *                                       waits)
 *   clear <apikey>                      forget pending request errors of that API
 *   topic <name> <partitions>           create a topic
 *   leader <topic> <partition> <broker> move a partition's leadership
 *   coord <group> <broker>              pin a consumer group's coordinator
 *   txn-marker-delay <ms>|hold          write the markers of a transaction <ms> after its
 *                                       EndTxn (or its abort by the coordinator) instead of at
 *                                       once; "hold" keeps them until the delay is set again
 *                                       (pending ones are then written <ms> later). Meanwhile
 *                                       it is PrepareCommit/PrepareAbort, as on a real broker
 *                                       while its markers are in flight.
 *   quit                                stop (same as closing stdin)
 *
 * Closing stdin (which happens when the parent process dies, however it dies) stops the cluster
 * and exits, so no mock outlives the process that started it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdkafka.h"
#include "rdkafka_mock.h"

#define MAX_ERRORS 1000

static int replicas(int brokers) { return brokers < 3 ? brokers : 3; }

static void reply(int ok, const char *reason, const char *line) {
  if (ok) printf("OK %s\n", line);
  else printf("ERR %s: %s\n", reason, line);
  fflush(stdout);
}

int main(int argc, char **argv) {
  char errstr[512];
  int brokers = argc > 1 ? atoi(argv[1]) : 1;
  if (brokers < 1 || brokers > 32) {
    fprintf(stderr, "usage: kafka-mock <brokers 1..32> [topic:partitions ...]\n");
    return 2;
  }
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) {
    fprintf(stderr, "kafka-mock: rd_kafka_new: %s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    fprintf(stderr, "kafka-mock: cannot create the mock cluster\n");
    return 1;
  }
  /* Brokers are numbered 1..n; kafkajs sends admin and idempotent-producer requests to the
   * controller, which must be one of them. */
  rd_kafka_mock_set_controller_id(mc, 1);
  /* Answer the first JoinGroup at once instead of after 3 s. */
  rd_kafka_mock_group_initial_rebalance_delay_ms(mc, 0);

  for (int i = 2; i < argc; i++) {
    char name[256];
    int parts = 1;
    const char *colon = strrchr(argv[i], ':');
    size_t len = colon ? (size_t)(colon - argv[i]) : strlen(argv[i]);
    if (len == 0 || len >= sizeof name) {
      fprintf(stderr, "kafka-mock: bad topic argument %s\n", argv[i]);
      return 2;
    }
    memcpy(name, argv[i], len);
    name[len] = '\0';
    if (colon) parts = atoi(colon + 1);
    if (parts < 1 || rd_kafka_mock_topic_create(mc, name, parts, replicas(brokers))) {
      fprintf(stderr, "kafka-mock: cannot create topic %s\n", argv[i]);
      return 2;
    }
  }

  printf("BOOTSTRAP %s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);

  char line[1024];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = '\0';
    char cmd[32] = "", a[256] = "";
    int x = 0, y = 0, z = 0, b = 0, c = 0, n = 0;
    if (sscanf(line, "%31s", cmd) != 1) continue;
    if (!strcmp(cmd, "quit")) {
      reply(1, NULL, line);
      break;
    } else if (!strcmp(cmd, "down") && sscanf(line, "down %d %n", &x, &n) == 1 && !line[n]) {
      reply(!rd_kafka_mock_broker_set_down(mc, x), "no such broker", line);
    } else if (!strcmp(cmd, "up") && sscanf(line, "up %d %n", &x, &n) == 1 && !line[n]) {
      reply(!rd_kafka_mock_broker_set_up(mc, x), "no such broker", line);
    } else if (!strcmp(cmd, "rtt") && sscanf(line, "rtt %d %d %n", &x, &y, &n) == 2 && !line[n]) {
      reply(y >= 0 && !rd_kafka_mock_broker_set_rtt(mc, x, y), "no such broker", line);
    } else if (!strcmp(cmd, "err") && sscanf(line, "err %d %d %d %n", &x, &y, &z, &n) == 3 &&
               !line[n]) {
      if (z < 1 || z > MAX_ERRORS) {
        reply(0, "count must be 1..1000", line);
        continue;
      }
      rd_kafka_resp_err_t errs[MAX_ERRORS];
      for (int i = 0; i < z; i++) errs[i] = (rd_kafka_resp_err_t)y;
      rd_kafka_mock_push_request_errors_array(mc, (int16_t)x, (size_t)z, errs);
      reply(1, NULL, line);
    } else if (!strcmp(cmd, "berr") &&
               sscanf(line, "berr %d %d %d %d %d %n", &x, &y, &z, &b, &c, &n) == 5 && !line[n]) {
      int ok = c >= 1 && c <= MAX_ERRORS && b >= 0 && z >= 0;
      for (int i = 0; ok && i < c; i++)
        ok = !rd_kafka_mock_broker_push_request_error_rtts(mc, x, (int16_t)y, 1,
                                                           (rd_kafka_resp_err_t)z, b);
      reply(ok, "no such broker, or count not 1..1000, or negative code or delay", line);
    } else if (!strcmp(cmd, "clear") && sscanf(line, "clear %d %n", &x, &n) == 1 && !line[n]) {
      rd_kafka_mock_clear_request_errors(mc, (int16_t)x);
      reply(1, NULL, line);
    } else if (!strcmp(cmd, "topic") && sscanf(line, "topic %255s %d %n", a, &x, &n) == 2 &&
               !line[n]) {
      reply(x > 0 && !rd_kafka_mock_topic_create(mc, a, x, replicas(brokers)), "cannot create topic",
            line);
    } else if (!strcmp(cmd, "leader") &&
               sscanf(line, "leader %255s %d %d %n", a, &x, &y, &n) == 3 && !line[n]) {
      reply(!rd_kafka_mock_partition_set_leader(mc, a, x, y), "no such partition or broker", line);
    } else if (!strcmp(cmd, "coord") && sscanf(line, "coord %255s %d %n", a, &x, &n) == 2 &&
               !line[n]) {
      reply(!rd_kafka_mock_coordinator_set(mc, "group", a, x), "cannot set coordinator", line);
    } else if (!strcmp(cmd, "txn-marker-delay") && !strcmp(line, "txn-marker-delay hold")) {
      rd_kafka_mock_txn_marker_delay_ms(mc, -1);
      reply(1, NULL, line);
    } else if (!strcmp(cmd, "txn-marker-delay") &&
               sscanf(line, "txn-marker-delay %d %n", &x, &n) == 1 && !line[n]) {
      if (x >= 0) rd_kafka_mock_txn_marker_delay_ms(mc, x);
      reply(x >= 0, "delay must be >= 0 or hold", line);
    } else {
      reply(0, "unknown command", line);
    }
  }

  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
