using Microsoft.Win32.SafeHandles;

namespace LlmPq.Gguf;

/// <summary>
/// Reads the data (the weights) of the tensors of a GGUF file whose tensor table <see cref="GgufReader"/> has read:
/// a whole tensor, or a run of its rows.
/// </summary>
/// <remarks>
/// Reads are positional, so one instance serves several threads at once. The reader has checked that every tensor
/// lies inside the file; a file that has changed since is a <see cref="GgufFormatException"/>, never a short read.
/// </remarks>
public sealed class GgufTensorData : IDisposable
{
    private readonly SafeFileHandle _handle;

    private GgufTensorData(GgufFile file, SafeFileHandle handle)
    {
        File = file;
        _handle = handle;
    }

    /// <summary>Gets the header and tensor table the data belongs to.</summary>
    public GgufFile File { get; }

    /// <summary>Opens the data of <paramref name="file"/>, read from <paramref name="path"/>.</summary>
    /// <param name="path">The path of the GGUF file.</param>
    /// <param name="file">What <see cref="GgufReader.Read(string)"/> read from that path.</param>
    /// <returns>The reader of the file's tensor data; dispose it to close the file.</returns>
    /// <exception cref="GgufFormatException">The file's length is not the one its header was read from.</exception>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static GgufTensorData Open(string path, GgufFile file)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(file);
        var handle = System.IO.File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        long length = RandomAccess.GetLength(handle);
        if (length != file.FileLength)
        {
            handle.Dispose();
            throw new GgufFormatException(
                Math.Min(length, file.FileLength),
                $"the file is {length} bytes long, but its tensor table was read from a file of {file.FileLength} bytes");
        }

        return new GgufTensorData(file, handle);
    }

    /// <summary>Gets the number of rows of <paramref name="tensor"/>: its elements over its row length (<c>ne0</c>).</summary>
    /// <param name="tensor">The tensor.</param>
    /// <returns>The product of every dimension but the first; 0 for an empty tensor.</returns>
    public static long RowCount(GgufTensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.Shape[0] == 0 ? 0 : tensor.ElementCount / tensor.Shape[0];
    }

    /// <summary>Gets the number of bytes one row of <paramref name="tensor"/> takes.</summary>
    /// <param name="tensor">The tensor.</param>
    /// <returns><see cref="GgmlTypes.RowBytes"/> of the tensor's type and row length.</returns>
    public static long RowBytes(GgufTensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return GgmlTypes.RowBytes(tensor.Type, tensor.Shape[0]);
    }

    /// <summary>Reads a whole tensor.</summary>
    /// <param name="tensor">A tensor of <see cref="File"/>.</param>
    /// <returns>The tensor's bytes, as the file stores them.</returns>
    /// <exception cref="ArgumentException"><paramref name="tensor"/> is not in <see cref="File"/>'s tensor table.</exception>
    /// <exception cref="NotSupportedException">The tensor is larger than an array can be; read it by rows.</exception>
    /// <exception cref="GgufFormatException">The file has become shorter than its tensor table says.</exception>
    public byte[] ReadTensor(GgufTensorInfo tensor)
    {
        CheckOwn(tensor);
        if (tensor.Bytes > Array.MaxLength)
        {
            throw new NotSupportedException($"Tensor '{tensor.Name}' is {tensor.Bytes} bytes, more than one array holds; read it by rows.");
        }

        var data = new byte[tensor.Bytes];
        ReadAt(tensor, 0, data);
        return data;
    }

    /// <summary>Reads consecutive rows of a tensor, as many as fill <paramref name="destination"/>.</summary>
    /// <param name="tensor">A tensor of <see cref="File"/>.</param>
    /// <param name="firstRow">The first row to read.</param>
    /// <param name="destination">Where the rows go; its length is a whole number of rows (<see cref="RowBytes"/>).</param>
    /// <exception cref="ArgumentException">
    /// <paramref name="tensor"/> is not in <see cref="File"/>'s tensor table, or <paramref name="destination"/> is not whole rows.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException">The rows run past the tensor's last row.</exception>
    /// <exception cref="GgufFormatException">The file has become shorter than its tensor table says.</exception>
    public void ReadRows(GgufTensorInfo tensor, long firstRow, Span<byte> destination)
    {
        CheckOwn(tensor);
        long rowBytes = RowBytes(tensor);
        if (destination.Length > 0 && (rowBytes == 0 || destination.Length % rowBytes != 0))
        {
            throw new ArgumentException($"{destination.Length} bytes are not whole rows of tensor '{tensor.Name}' ({rowBytes} bytes each).", nameof(destination));
        }

        long count = destination.Length == 0 ? 0 : destination.Length / rowBytes;
        long rows = RowCount(tensor);
        ArgumentOutOfRangeException.ThrowIfNegative(firstRow);
        if (firstRow > rows - count)
        {
            throw new ArgumentOutOfRangeException(nameof(firstRow), firstRow, $"Rows {firstRow} to {firstRow + count - 1} are not all in tensor '{tensor.Name}', which has {rows}.");
        }

        ReadAt(tensor, firstRow * rowBytes, destination);
    }

    /// <inheritdoc/>
    public void Dispose() => _handle.Dispose();

    private void CheckOwn(GgufTensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (!File.TryGetTensor(tensor.Name, out var own) || !own.Equals(tensor))
        {
            throw new ArgumentException($"Tensor '{tensor.Name}' is not in this file's tensor table.", nameof(tensor));
        }
    }

    private void ReadAt(GgufTensorInfo tensor, long offsetInTensor, Span<byte> destination)
    {
        long position = File.DataOffset + tensor.Offset + offsetInTensor;
        if (position > File.FileLength - destination.Length)
        {
            throw new GgufFormatException(position, $"{destination.Length} bytes of tensor '{tensor.Name}' would extend beyond the end of the file ({File.FileLength} bytes)");
        }

        while (!destination.IsEmpty)
        {
            int read = RandomAccess.Read(_handle, destination, position);
            if (read == 0)
            {
                throw new GgufFormatException(position, $"the file ended inside tensor '{tensor.Name}': it is shorter than the {File.FileLength} bytes its tensor table was read from");
            }

            destination = destination[read..];
            position += read;
        }
    }
}
