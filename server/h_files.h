/*
 * h_files.h: the /v1/files endpoints (OpenAI's Files API, fine-tune purpose):
 * upload, list, retrieve, download and delete. routes.c names them.
 */
#ifndef OWLORE_H_FILES_H
#define OWLORE_H_FILES_H

#include <microhttpd.h>

#include "routes.h"

/* POST /v1/files streams its multipart body through this (upload.h). */
extern const struct route_stream files_upload_stream;

enum MHD_Result files_post(struct http_request *req);
enum MHD_Result files_list(struct http_request *req);
enum MHD_Result files_get(struct http_request *req);
enum MHD_Result files_content(struct http_request *req);
enum MHD_Result files_delete(struct http_request *req);

#endif
