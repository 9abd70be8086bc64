/*
 * layout_dump.c — prints the memory layout of every struct in mcp_plugin.h:
 *
 *   struct <name> size <bytes>
 *   <struct> <field> <offset> <size>
 *
 * check_layout.py compiles and runs it and compares the output with layout.golden.
 * When a field is appended to a struct in the header, add a FIELD line here too
 * (check_layout.py fails until you do), then run `Tests/abi/check_layout.py --update`.
 */
#include "mcp_plugin.h"

#include <stddef.h>
#include <stdio.h>

#define STRUCT(T) printf("struct %s size %zu\n", #T, sizeof(T))
#define FIELD(T, f) printf("%s %s %zu %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))

int main(void)
{
    STRUCT(mcpp_str);
    FIELD(mcpp_str, ptr);
    FIELD(mcpp_str, len);

    STRUCT(mcpp_writer);
    FIELD(mcpp_writer, struct_size);
    FIELD(mcpp_writer, reserved);
    FIELD(mcpp_writer, ctx);
    FIELD(mcpp_writer, write);

    STRUCT(mcpp_tool);
    FIELD(mcpp_tool, struct_size);
    FIELD(mcpp_tool, flags);
    FIELD(mcpp_tool, name);
    FIELD(mcpp_tool, title);
    FIELD(mcpp_tool, description);
    FIELD(mcpp_tool, input_schema);
    FIELD(mcpp_tool, output_schema);
    FIELD(mcpp_tool, annotations);

    STRUCT(mcpp_resource);
    FIELD(mcpp_resource, struct_size);
    FIELD(mcpp_resource, reserved);
    FIELD(mcpp_resource, uri);
    FIELD(mcpp_resource, name);
    FIELD(mcpp_resource, title);
    FIELD(mcpp_resource, description);
    FIELD(mcpp_resource, mime_type);
    FIELD(mcpp_resource, size);

    STRUCT(mcpp_resource_template);
    FIELD(mcpp_resource_template, struct_size);
    FIELD(mcpp_resource_template, reserved);
    FIELD(mcpp_resource_template, uri_template);
    FIELD(mcpp_resource_template, name);
    FIELD(mcpp_resource_template, title);
    FIELD(mcpp_resource_template, description);
    FIELD(mcpp_resource_template, mime_type);

    STRUCT(mcpp_prompt_arg);
    FIELD(mcpp_prompt_arg, struct_size);
    FIELD(mcpp_prompt_arg, flags);
    FIELD(mcpp_prompt_arg, name);
    FIELD(mcpp_prompt_arg, title);
    FIELD(mcpp_prompt_arg, description);

    STRUCT(mcpp_prompt);
    FIELD(mcpp_prompt, struct_size);
    FIELD(mcpp_prompt, arg_count);
    FIELD(mcpp_prompt, name);
    FIELD(mcpp_prompt, title);
    FIELD(mcpp_prompt, description);
    FIELD(mcpp_prompt, args);

    STRUCT(mcpp_registry);
    FIELD(mcpp_registry, struct_size);
    FIELD(mcpp_registry, reserved);
    FIELD(mcpp_registry, ctx);
    FIELD(mcpp_registry, add_tool);
    FIELD(mcpp_registry, add_resource);
    FIELD(mcpp_registry, add_resource_template);
    FIELD(mcpp_registry, add_prompt);
    FIELD(mcpp_registry, set_list_cache);

    STRUCT(mcpp_host);
    FIELD(mcpp_host, struct_size);
    FIELD(mcpp_host, abi_minor);
    FIELD(mcpp_host, ctx);
    FIELD(mcpp_host, log);
    FIELD(mcpp_host, notify_list_changed);
    FIELD(mcpp_host, notify_resource_updated);
    FIELD(mcpp_host, get_extension);
    FIELD(mcpp_host, arg_string);
    FIELD(mcpp_host, arg_int);
    FIELD(mcpp_host, arg_double);
    FIELD(mcpp_host, arg_bool);
    FIELD(mcpp_host, arg_json);
    FIELD(mcpp_host, add_text);
    FIELD(mcpp_host, add_image);
    FIELD(mcpp_host, add_audio);
    FIELD(mcpp_host, add_resource_text);
    FIELD(mcpp_host, add_resource_blob);
    FIELD(mcpp_host, add_content_json);
    FIELD(mcpp_host, set_structured);
    FIELD(mcpp_host, set_role);
    FIELD(mcpp_host, set_description);
    FIELD(mcpp_host, add_completion);
    FIELD(mcpp_host, set_completion_info);
    FIELD(mcpp_host, progress);
    FIELD(mcpp_host, call_log);
    FIELD(mcpp_host, is_cancelled);
    FIELD(mcpp_host, finish);
    FIELD(mcpp_host, request_input);
    FIELD(mcpp_host, set_request_state);
    FIELD(mcpp_host, get_request_state);
    FIELD(mcpp_host, set_cache);
    FIELD(mcpp_host, json_get);

    STRUCT(mcpp_metrics);
    FIELD(mcpp_metrics, struct_size);
    FIELD(mcpp_metrics, reserved);
    FIELD(mcpp_metrics, ctx);
    FIELD(mcpp_metrics, register_metric);
    FIELD(mcpp_metrics, add);
    FIELD(mcpp_metrics, set);
    FIELD(mcpp_metrics, observe);

    STRUCT(mcpp_plugin);
    FIELD(mcpp_plugin, struct_size);
    FIELD(mcpp_plugin, threading);
    FIELD(mcpp_plugin, max_concurrency);
    FIELD(mcpp_plugin, reserved);
    FIELD(mcpp_plugin, name);
    FIELD(mcpp_plugin, version);
    FIELD(mcpp_plugin, title);
    FIELD(mcpp_plugin, instructions);
    FIELD(mcpp_plugin, create);
    FIELD(mcpp_plugin, destroy);
    FIELD(mcpp_plugin, describe);
    FIELD(mcpp_plugin, call_tool);
    FIELD(mcpp_plugin, read_resource);
    FIELD(mcpp_plugin, get_prompt);
    FIELD(mcpp_plugin, complete);
    FIELD(mcpp_plugin, cancel);
    FIELD(mcpp_plugin, health);
    FIELD(mcpp_plugin, diagnose);
    FIELD(mcpp_plugin, get_extension);

    STRUCT(mcpp_negotiation);
    FIELD(mcpp_negotiation, struct_size);
    FIELD(mcpp_negotiation, host_abi_major);
    FIELD(mcpp_negotiation, host_abi_minor);
    FIELD(mcpp_negotiation, plugin_abi_minor);
    FIELD(mcpp_negotiation, plugin);
    return 0;
}
