/*
 * serve_config.h: the settings of `owlore serve`, each from a flag, else an
 * environment variable, else a JSON config file, else its default:
 *
 *   flag                      environment                    file key
 *   --host ADDR               OWLORE_HOST                    host (127.0.0.1)
 *   --port N                  OWLORE_PORT                    port (8080)
 *   --data-dir DIR            OWLORE_DATA_DIR                data_dir (var)
 *   --threads N               OWLORE_THREADS                 threads (4)
 *   --model PATH              OWLORE_MODEL                   model (models/SmolLM2-135M-Instruct.Q4_1.gguf)
 *   --memory-limit SIZE       OWLORE_MEMORY_LIMIT            memory_limit (the training device's)
 *   --max-upload SIZE         OWLORE_MAX_UPLOAD              max_upload (512M)
 *   --web-dir DIR             OWLORE_WEB_DIR                 web_dir (web/ beside build/, else ./web)
 *   --webhook-allow-loopback  OWLORE_WEBHOOK_ALLOW_LOOPBACK=1  webhook_allow_loopback (false)
 *   --max-per-ip N            OWLORE_MAX_PER_IP              max_per_ip (32)
 *
 * The file is named by --config FILE or OWLORE_CONFIG; it holds one JSON
 * object with the keys above (an unknown key or a value of the wrong type is
 * an error naming it). SIZE is bytes with an optional K, M, G or T suffix
 * (powers of 1024), in the file a number or such a string.
 */
#ifndef OWLORE_SERVE_CONFIG_H
#define OWLORE_SERVE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct serve_config {
    char host[64];
    uint16_t port;
    char data_dir[4096];
    unsigned threads;
    char model[4096];
    double memory_limit; /* bytes; 0: the memory of the device jobs train on */
    size_t max_upload;   /* bytes */
    char web_dir[4096]; /* "" when not set */
    int webhook_allow_loopback;
    unsigned max_per_ip; /* connections from one address (http.h) */
};

/* Fills c from argv (owlore serve's), the environment and the config file.
 * 0, or -1 with a message naming the bad setting and where it came from. */
int serve_config_load(int argc, char **argv, struct serve_config *c, char *err, size_t errlen);

/* Parses SIZE (see above) into *out; -1 when malformed. */
int serve_config_size(const char *s, double *out);

#endif
