/* kafka_mock.h - `omnihubctl kafka-mock`: hosts librdkafka's mock cluster
 * in its own process so several omnihubd processes can share one. */
#ifndef OH_TOOLS_KAFKA_MOCK_H
#define OH_TOOLS_KAFKA_MOCK_H

/* Runs the subcommand (ARGV[0] is the program name); returns the exit
 * status: 0 after SIGTERM/SIGINT, 1 when the cluster cannot start, 2 on a
 * usage error. */
int oh_kafka_mock_cmd(int argc, char **argv);

#endif
