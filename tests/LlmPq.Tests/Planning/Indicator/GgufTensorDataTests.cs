using LlmPq.Gguf;

namespace LlmPq.Tests.Planning.Indicator;

public sealed class GgufTensorDataTests
{
    private static readonly float[] s_matrix = [.. Enumerable.Range(0, 12).Select(i => (float)i)];

    [Fact]
    public void Reads_a_tensor_and_runs_of_its_rows()
    {
        string path = Write();
        var file = GgufReader.Read(path);
        using var data = GgufTensorData.Open(path, file);
        Assert.True(file.TryGetTensor("m", out var matrix));
        Assert.True(file.TryGetTensor("v", out var vector));

        Assert.Equal(3, GgufTensorData.RowCount(matrix));
        Assert.Equal(16, GgufTensorData.RowBytes(matrix));
        Assert.Equal(IndicatorModels.Bytes(s_matrix), data.ReadTensor(matrix));
        Assert.Equal(IndicatorModels.Bytes([9f, 8f]), data.ReadTensor(vector));

        var rows = new byte[32];
        data.ReadRows(matrix, 1, rows);
        Assert.Equal(IndicatorModels.Bytes(s_matrix[4..12]), rows);
        data.ReadRows(matrix, 3, []);
    }

    [Fact]
    public void Rows_outside_the_tensor_and_foreign_tensors_are_refused()
    {
        string path = Write();
        var file = GgufReader.Read(path);
        using var data = GgufTensorData.Open(path, file);
        Assert.True(file.TryGetTensor("m", out var matrix));

        Assert.Throws<ArgumentOutOfRangeException>(() => data.ReadRows(matrix, 2, new byte[32]));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.ReadRows(matrix, -1, new byte[16]));
        Assert.Throws<ArgumentException>(() => data.ReadRows(matrix, 0, new byte[20]));

        var other = GgufReader.Read(Write(offsetBy: 1));
        Assert.True(other.TryGetTensor("m", out var foreign));
        Assert.Throws<ArgumentException>(() => data.ReadTensor(foreign));
    }

    [Fact]
    public void A_file_shorter_than_its_tensor_table_fails_cleanly()
    {
        string path = Write();
        var file = GgufReader.Read(path);
        Assert.True(file.TryGetTensor("m", out var matrix));

        // Shrunk before opening: the length no longer matches.
        Truncate(path, file.FileLength - 8);
        Assert.Throws<GgufFormatException>(() => GgufTensorData.Open(path, file));

        // Shrunk while open: the read runs out of file.
        path = Write();
        file = GgufReader.Read(path);
        Assert.True(file.TryGetTensor("m", out matrix));
        using var data = GgufTensorData.Open(path, file);
        Truncate(path, file.DataOffset + matrix.Offset + 20);
        var error = Assert.Throws<GgufFormatException>(() => data.ReadTensor(matrix));
        Assert.Equal(file.DataOffset + matrix.Offset + 20, error.Offset);
    }

    private static void Truncate(string path, long length)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        stream.SetLength(length);
    }

    // A 4 × 3 F32 matrix and a 2-vector; offsetBy shifts the matrix behind a padding tensor.
    private static string Write(int offsetBy = 0)
    {
        var writer = new GgufWriter();
        writer.AddMetadata("general.architecture", "llama");
        if (offsetBy > 0)
        {
            writer.AddTensor("pad", GgmlType.F32, [offsetBy], new byte[offsetBy * 4]);
        }

        writer.AddTensor("m", GgmlType.F32, [4, 3], IndicatorModels.Bytes(s_matrix));
        writer.AddTensor("v", GgmlType.F32, [2], IndicatorModels.Bytes([9f, 8f]));
        string path = TestModels.TempPath("data.gguf");
        writer.Write(path);
        return path;
    }
}
