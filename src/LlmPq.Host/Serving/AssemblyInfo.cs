using System.Runtime.CompilerServices;

// The serving tests start the internal OpenAIServer in process.
[assembly: InternalsVisibleTo("LlmPq.Tests")]
