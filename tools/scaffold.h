/* scaffold.h - `omnihubctl new-connector`: a new connector generated from
 * the templates of tools/templates/connector/. */
#ifndef OH_SCAFFOLD_H
#define OH_SCAFFOLD_H

/* The command: ARGV[1] is the name; --root DIR the source tree (default
 * "."). Returns the exit status: 0 done, 1 failed, 2 usage or bad name. */
int oh_scaffold_cmd(int argc, char **argv);

#endif
