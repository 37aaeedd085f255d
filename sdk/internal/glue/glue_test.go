package glue

import (
	"bytes"
	"fmt"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pb "github.com/clickgate/clickgate/sdk/internal/forwarderv1"
)

func batch(n int) *pb.ForwardRequest {
	req := &pb.ForwardRequest{}
	for i := range n {
		req.Events = append(req.Events, &pb.Event{
			Id: fmt.Sprintf("e%06d", i), Type: "click", TimeUnixNano: int64(i),
			Json: bytes.Repeat([]byte{'x'}, 600),
		})
	}
	return req
}

// The codec round-trips messages below gRPC's pooling threshold and far above it, and a
// message it unmarshalled owns its bytes once the received buffer is recycled.
func TestCodecRoundTrip(t *testing.T) {
	c := Codec()
	for _, n := range []int{0, 1, 100, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			want := batch(n)
			data, err := c.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if data.Len() != proto.Size(want) {
				t.Fatalf("marshalled %d bytes, want %d", data.Len(), proto.Size(want))
			}
			got := &pb.ForwardRequest{}
			if err := c.Unmarshal(data, got); err != nil {
				t.Fatal(err)
			}
			data.Free()
			// Reuse the pool's buffers, so an alias into them would show.
			again, err := c.Marshal(batch(n))
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range again {
				clear(b.ReadOnlyData())
			}
			if !proto.Equal(got, want) {
				t.Fatal("the message read back differs from the one written")
			}
		})
	}
}

func TestCodecRefuses(t *testing.T) {
	c := Codec()
	if _, err := c.Marshal("not a message"); err == nil {
		t.Error("marshalled a string")
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0xff})}, &pb.ForwardRequest{}); err == nil {
		t.Error("unmarshalled a truncated message")
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(nil)}, new(int)); err == nil {
		t.Error("unmarshalled into an int")
	}
}
