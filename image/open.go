package image

import (
	"context"
	"fmt"
)

// Open parses ref, opens its Source (OpenSource) and resolves it to
// one image (Resolve). Close the Image to release the source.
func Open(ctx context.Context, ref string, opts Options) (*Image, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	src, err := OpenSource(ctx, r, opts)
	if err != nil {
		return nil, err
	}
	img, err := Resolve(ctx, src, r, opts)
	if err != nil {
		src.Close()
		return nil, err
	}
	return img, nil
}

// OpenSource opens the source ref.Transport and ref.Path name. This
// switch is the one place that knows every kind of source.
func OpenSource(ctx context.Context, ref Reference, opts Options) (Source, error) {
	switch ref.Transport {
	case TransportLayout:
		l, err := OpenLayout(ref.Path)
		if err != nil {
			return nil, err
		}
		return l, nil
	case TransportOCIArchive:
		l, err := OpenOCIArchive(ref.Path)
		if err != nil {
			return nil, err
		}
		return l, nil
	case TransportDockerArchive:
		a, err := OpenDockerArchive(ref.Path)
		if err != nil {
			return nil, err
		}
		return a, nil
	case TransportRegistry:
		return OpenRegistry(ctx, ref, opts.Registry)
	}
	return nil, fmt.Errorf("open %q: %w %q", ref.String(), ErrUnknownTransport, ref.Transport)
}
