using LlmPq.Chat;
using LlmPq.Engine;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace LlmPq.Host.Serving;

/// <summary>
/// The server's OpenTelemetry: the engine's meter (<c>gen_ai.server.*</c>, <c>llmpq.engine.*</c>) and ASP.NET Core's
/// request meter, scraped at
/// <c>/metrics</c> in Prometheus' format, and, given an OTLP endpoint, metrics and traces pushed there too.
/// </summary>
internal static class ServerTelemetry
{
    /// <summary>The path Prometheus scrapes.</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>Registers the meter and tracer providers and their exporters.</summary>
    public static void Add(IServiceCollection services, OpenAIServerOptions options)
    {
        OpenTelemetry.OpenTelemetryBuilder telemetry = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("llmpq"))
            .WithMetrics(metrics =>
            {
                // ASP.NET Core's own meter adds http.server.request.duration by route and status: the refusals and 503s.
                metrics.AddMeter(EngineMetrics.MeterName, "Microsoft.AspNetCore.Hosting").AddPrometheusExporter();
                if (options.OtlpEndpoint is { } endpoint)
                {
                    metrics.AddOtlpExporter(o => Configure(o, endpoint, "v1/metrics"));
                }
            });
        if (options.OtlpEndpoint is { } traces)
        {
            // ASP.NET Core's own source: one span per request, with the W3C trace context the caller sent; under it
            // LlmPq's GenAI span of the chat (in process: a pipeline's runner keeps its own).
            telemetry.WithTracing(tracing => tracing
                .AddSource("Microsoft.AspNetCore", ChatTelemetry.SourceName)
                .AddOtlpExporter(o => Configure(o, traces, "v1/traces")));
        }
    }

    /// <summary>OTLP over HTTP/protobuf (no gRPC needed); the signal's path appended to the base endpoint, as the OTLP spec reads it.</summary>
    private static void Configure(OtlpExporterOptions otlp, Uri endpoint, string signalPath)
    {
        otlp.Protocol = OtlpExportProtocol.HttpProtobuf;
        otlp.Endpoint = new Uri(endpoint.AbsoluteUri.TrimEnd('/') + "/" + signalPath);
    }
}
